"""Fixtures shared by every scenario's testinfra verify (pytest loads this file for molecule/*/tests)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ScenarioPlaybook = Callable[..., subprocess.CompletedProcess[str]]  # (name, *extra args)


@pytest.fixture
def scenario_playbook(request: pytest.FixtureRequest) -> ScenarioPlaybook:
    """Run a playbook of the requesting test's scenario against molecule's inventory."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run through molecule verify"
    scenario = Path(request.path).resolve().parent.parent

    def run(name: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "ansible-playbook"), "-i", inventory, str(scenario / name),
             *extra],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    return run
