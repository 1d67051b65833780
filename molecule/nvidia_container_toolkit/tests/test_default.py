"""Verify the nvidia_container_toolkit role on the molecule instance."""

from __future__ import annotations

import json
import os
import re
from typing import Any

import pytest

VERSION = "1.17.8-1"
PACKAGES = [
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
]
CHECK_IMAGE = os.environ.get("MXMOL_CHECK_IMAGE") or "memoryx-lab/vllm-sim:lab"
LINE = re.compile(r"^GPU (\d+): .* \(UUID: ([^)]+)\)$")


def host_gpus(host: Any) -> dict[int, str]:
    """index -> UUID as the driver on the host lists them."""
    out = host.check_output("nvidia-smi -L")
    found = [LINE.match(line) for line in out.splitlines()]
    return {int(m.group(1)): m.group(2) for m in found if m}


def gpus_in_container(host: Any, device: str) -> Any:
    return host.run(
        f"docker run --rm --gpus device={device} --entrypoint nvidia-smi {CHECK_IMAGE} -L"
    )


def test_docker_running_and_enabled(host: Any) -> None:
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_daemon_json_has_nvidia_runtime_and_keeps_other_keys(host: Any) -> None:
    data = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert data["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    assert data["log-opts"] == {"max-size": "10m"}  # written by prepare.yml


def test_docker_knows_the_nvidia_runtime(host: Any) -> None:
    runtimes = json.loads(host.check_output("docker info --format '{{json .Runtimes}}'"))
    assert "nvidia" in runtimes


@pytest.mark.parametrize("name", PACKAGES)
def test_package_pinned_and_held(host: Any, name: str) -> None:
    package = host.package(name)
    assert package.is_installed
    assert package.version == VERSION
    assert name in host.check_output("apt-mark showhold").split()


def test_repository_uses_keyring_and_signed_by(host: Any) -> None:
    sources = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/nvidia-container-toolkit.asc" in sources
    assert "Suites: /" in sources
    assert host.file("/etc/apt/keyrings/nvidia-container-toolkit.asc").contains(
        "BEGIN PGP PUBLIC KEY"
    )


def test_container_pinned_to_gpu1_sees_exactly_gpu1(host: Any) -> None:
    gpus = host_gpus(host)
    assert sorted(gpus) == [0, 1, 2]
    result = gpus_in_container(host, "1")
    assert result.rc == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(f"(UUID: {gpus[1]})")


def test_container_pinned_to_missing_gpu_fails(host: Any) -> None:
    result = gpus_in_container(host, "7")
    assert result.rc != 0
    assert "device error: 7: unknown device" in result.stderr


def test_container_without_gpus_sees_no_driver(host: Any) -> None:
    result = host.run(f"docker run --rm --entrypoint sh {CHECK_IMAGE} -c 'command -v nvidia-smi'")
    assert result.rc != 0
