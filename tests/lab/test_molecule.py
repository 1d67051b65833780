"""Each role's molecule scenario (create, converge, idempotence, verify, destroy) on the lab host image.

The scenarios share nothing (each has its own instance, network and repository container), so
they run side by side: MEMORYX_MOLECULE_JOBS at a time (default 3), the slowest started first.
On a 2-CPU machine three at once take about half the time of one after another
(docs/figures.md, "Test tiers"); four at once took longer than three. Each test waits for its
own scenario and reports its output.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))
# Started first so that the longest one does not run alone at the end (its verify runs client
# traffic through reloads and drains).
SLOWEST = ("nginx_unified", "prometheus_server", "nvidia_container_toolkit", "ollama_bge")
JOBS = int(os.environ.get("MEMORYX_MOLECULE_JOBS", "3"))


def molecule_test(scenario: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "molecule"), "test", "-s", scenario],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=1500,
    )


def start_order(selected: list[str]) -> list[str]:
    return sorted(selected, key=lambda s: (SLOWEST.index(s) if s in SLOWEST else len(SLOWEST), s))


@pytest.fixture(scope="module")
def runs(request: pytest.FixtureRequest) -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    """Every selected scenario, started at once on a pool of JOBS workers."""
    selected = [str(item.callspec.params["scenario"]) for item in request.session.items
                if isinstance(item, pytest.Function) and item.originalname == "test_molecule_scenario"]
    with ThreadPoolExecutor(max_workers=max(JOBS, 1)) as pool:
        yield {s: pool.submit(molecule_test, s) for s in start_order(selected)}


def test_the_slowest_are_scenarios() -> None:
    assert set(SLOWEST) <= set(SCENARIOS)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(
    runs: dict[str, Future[subprocess.CompletedProcess[str]]], scenario: str
) -> None:
    run = runs[scenario].result()
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
