"""Verify role container_image: an image loaded from its archive, exactly that image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from conftest import ScenarioPlaybook

from memoryx_deploy.inputs.containers import archive_name

SCENARIO = Path(__file__).resolve().parent.parent
PROJECT = SCENARIO.parent.parent
ROLE_VARS = yaml.safe_load((SCENARIO / "converge.yml").read_text())[0]["tasks"][0]["vars"]
IMAGE = "memoryx-lab/nginx:bookworm"
ARCHIVE = archive_name(IMAGE)
ARCHIVE_DIR = PROJECT / "lab" / "build" / "images"
HOST_DIR = "/var/lib/memoryx/images"  # the role's default


def test_converge_asks_for_the_image() -> None:
    assert f"['{IMAGE}']" in ROLE_VARS["container_image_images"]


def test_image_present_in_the_engine(host: Any) -> None:
    result = host.run(f"docker image inspect --format '{{{{.Id}}}}' {IMAGE}")
    assert result.rc == 0, result.stderr


def test_image_is_the_one_saved_in_the_archive(host: Any) -> None:
    saved_id = (ARCHIVE_DIR / f"{ARCHIVE}.id").read_text().strip()
    loaded_id = host.check_output(f"docker image inspect --format '{{{{.Id}}}}' {IMAGE}")
    assert loaded_id == saved_id


def test_image_runs(host: Any) -> None:
    result = host.run(f"docker run --rm --entrypoint nginx {IMAGE} -v")
    assert result.rc == 0, result.stderr
    assert "nginx version" in result.stderr


def test_archive_copied_root_only(host: Any) -> None:
    archive = host.file(f"{HOST_DIR}/{ARCHIVE}")
    assert archive.is_file
    assert archive.user == "root"
    assert archive.mode == 0o600
    assert archive.size == (ARCHIVE_DIR / ARCHIVE).stat().st_size
    assert host.file(HOST_DIR).mode == 0o700


def test_missing_archive_stops_the_run_naming_it(scenario_playbook: ScenarioPlaybook) -> None:
    result = scenario_playbook("missing_archive.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "image memoryx-lab/no-such-image:lab is not on" in output
    assert f"{ARCHIVE_DIR}/memoryx-lab_no-such-image_lab.tar does not exist on the controller" in output
