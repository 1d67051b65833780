"""Lint and static checks of the whole project, as part of the fast tier."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())
PYTHON = ["memoryx_deploy", "plugins", "lab/simulators", "bench", "tests", "scripts/vllm-flags", "scripts/design-doc",
          "roles/docker_containers/files/memoryx-boot",
          "molecule"]


def run(*argv: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = ansible_env(NO_COLOR="1", **extra_env)
    env["PATH"] = f"{BIN}:{os.environ['PATH']}"
    return subprocess.run(list(argv), cwd=ROOT, env=env, text=True, capture_output=True, timeout=900)


def test_ansible_lint_production_profile() -> None:
    result = run(str(BIN / "ansible-lint"), "--nocolor", "--profile", "production")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]


def test_yamllint() -> None:
    result = run(str(BIN / "yamllint"), "--strict", ".")
    assert result.returncode == 0, result.stdout[-4000:]


def test_ruff() -> None:
    result = run(str(BIN / "ruff"), "check", *PYTHON)
    assert result.returncode == 0, result.stdout[-4000:]


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"), "--strict", "memoryx_deploy", "plugins/filter")
    assert result.returncode == 0, result.stdout[-4000:]
    result = run(str(BIN / "mypy"), "--strict", "bench/gateway_bench.py", MYPYPATH=str(ROOT / "tests/gateway"))
    assert result.returncode == 0, result.stdout[-4000:]
    for script in ("bench/ansible_bench.py", "bench/ci_tiers.py", "scripts/vllm-flags", "scripts/design-doc",
                   "roles/docker_containers/files/memoryx-boot",
                   "plugins/vars/memoryx_yaml.py"):
        result = run(str(BIN / "mypy"), "--strict", script)
        assert result.returncode == 0, script + result.stdout[-4000:]
    # each scenario's verify module is a test_default.py: one mypy run apiece
    for verify in sorted([*(ROOT / "molecule").glob("*.py"), *(ROOT / "molecule").glob("*/tests/*.py")]):
        result = run(str(BIN / "mypy"), "--strict", str(verify), MYPYPATH=str(ROOT / "molecule"))
        assert result.returncode == 0, str(verify) + result.stdout[-4000:]
    for simulator in sorted((ROOT / "lab/simulators").glob("*.py")):
        result = run(str(BIN / "mypy"), "--strict", str(simulator))
        assert result.returncode == 0, result.stdout[-4000:]


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_match_argument_specs(role: str) -> None:
    """Every default is documented in meta/argument_specs.yml and in the README, and vice versa."""
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())
    options: set[str] = set()
    for entry in specs["argument_specs"].values():
        options |= set(entry.get("options", {}))
    assert set(defaults) <= options, f"defaults without a spec: {sorted(set(defaults) - options)}"
    required = {
        name
        for entry in specs["argument_specs"].values()
        for name, spec in entry.get("options", {}).items()
        if spec.get("required")
    }
    assert options - required <= set(defaults), f"specs without a default: {sorted(options - required - set(defaults))}"
    readme = (ROOT / "roles" / role / "README.md").read_text()
    assert not [name for name in options if f"`{name}`" not in readme], "options missing from the README"


@pytest.mark.parametrize("role", ROLES)
def test_role_prefixes_its_variables(role: str) -> None:
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()) or {}
    assert [name for name in defaults if not name.startswith(f"{role}_")] == []


def test_requirements_yml_pins_the_collections_the_venv_ships() -> None:
    """requirements.yml pins what the pinned `ansible` package installs (no Galaxy needed)."""
    wanted = yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]
    listed = run(str(BIN / "ansible-galaxy"), "collection", "list", "--format", "yaml")
    installed: dict[str, str] = {}
    for collections in yaml.safe_load(listed.stdout).values():
        for name, info in collections.items():
            installed.setdefault(name, info["version"])
    assert {c["name"]: c["version"] for c in wanted} == {c["name"]: installed.get(c["name"]) for c in wanted}
