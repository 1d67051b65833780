"""Each role's molecule scenario (create, converge, idempotence, verify, destroy) on the lab host image."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ANSIBLE_NOCOLOR": "1",
    }
    run = subprocess.run(
        [str(Path(sys.executable).parent / "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=1500,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
