"""The lab tier: the whole stack on two lab hosts, deployed by site.yml over SSH.

The session brings the lab up once (`lab/lab.sh up`), deploys site.yml through
ansible-runner and hands its results to the tests. Everything here talks only
to the lab's own addresses (10.99.0.0/24) and loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ansible_runner
import pytest

from bench.figures import write_section
from memoryx_deploy.operate.runner_events import TaskResult, task_results
from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = ROOT / "inventory/lab/hosts.yml"
# The gateway speaks TLS with a certificate of the lab's site CA (issue 11); fixture
# trust_lab_ca makes the tier's clients trust it.
GATEWAY_URL = "https://10.99.0.65:11436"
LAB_CA = ROOT / "lab/build/pki/ca.crt"
LLM_HOST = "mx-lab-llm"
EMBED_HOST = "mx-lab-embed"
PROBE = "mx-lab-probe"


@dataclass
class PlaybookRun:
    """What ansible-runner reported of one playbook run."""

    rc: int
    status: str
    stats: dict[str, dict[str, int]]
    seconds: float
    events: list[dict[str, Any]] = field(repr=False, default_factory=list)

    def total(self, key: str) -> int:
        return sum(self.stats.get(key, {}).values())

    def results(self, task: str | None = None, kinds: Collection[str] = ("runner_on_ok",)) -> list[TaskResult]:
        """The run's task results of `kinds`, of `task` when given (memoryx_deploy.runner_events)."""
        return task_results(self.events, kinds, task)

    def changed_tasks(self) -> list[str]:
        return [f"{r.host}: {r.task}" for r in self.results() if r.changed]

    def failures(self) -> list[str]:
        return [f"{r.host}: {r.task}: {r.res.get('msg')}"
                for r in self.results(kinds=("runner_on_failed", "runner_on_unreachable"))
                if not r.ignore_errors]


def run_playbook(
    playbook: str, tmp: Path, *, extravars: dict[str, Any] | None = None, check: bool = False
) -> PlaybookRun:
    """Run a playbook of the project against the lab through ansible-runner."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_VAULT_IDENTITY_LIST": ansible_env()["ANSIBLE_VAULT_IDENTITY_LIST"],
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
    }
    start = time.monotonic()
    result = ansible_runner.run(
        private_data_dir=str(tmp),
        project_dir=str(ROOT),
        playbook=str(ROOT / playbook),
        inventory=str(LAB_INVENTORY),
        envvars=env,
        extravars=extravars or {},
        cmdline="--check" if check else None,
        quiet=True,
    )
    seconds = time.monotonic() - start
    return PlaybookRun(
        rc=result.rc,
        status=result.status,
        stats=result.stats or {},
        seconds=seconds,
        events=list(result.events),
    )


def containers() -> dict[str, str]:
    """Every container on both lab hosts: name -> ID (a recreated one gets a new ID)."""
    found = {}
    for host in (LLM_HOST, EMBED_HOST):
        out = on_host(host, "docker ps -a --no-trunc --format '{{.Names}} {{.ID}}'").stdout
        found.update(dict(line.split() for line in out.splitlines() if line.strip()))
    return found


def sh(*argv: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), cwd=ROOT, text=True, capture_output=True, check=check, timeout=timeout
    )


def on_host(host: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a shell command on a lab host (as root, through docker exec)."""
    return sh("docker", "exec", host, "sh", "-c", command, check=check)


@pytest.fixture(scope="session", autouse=True)
def trust_lab_ca() -> Iterator[None]:
    """Clients that take no CA argument (httpx under openai and ollama, urllib) trust the lab CA
    through SSL_CERT_FILE; a test of an untrusting client removes it with monkeypatch."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(LAB_CA))
        yield


@pytest.fixture(scope="session")
def lab() -> None:
    """Fresh lab hosts, so the first deploy starts from bare servers (MEMORYX_LAB_REUSE=1 keeps them)."""
    if os.environ.get("MEMORYX_LAB_REUSE") != "1":
        sh("lab/lab.sh", "down", timeout=300)
    sh("lab/lab.sh", "up", timeout=900)
    sh("lab/vault.sh")


@pytest.fixture(scope="session")
def api_key(lab: None) -> str:
    return (ROOT / "lab/build/api-key").read_text().strip()


@pytest.fixture(scope="session")
def deploy_runs(lab: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PlaybookRun]:
    """site.yml three times: the deploy, the idempotent re-run, and --check."""
    base = tmp_path_factory.mktemp("runner")
    first = run_playbook("site.yml", base / "first")
    assert first.rc == 0, "\n".join(first.failures())
    second = run_playbook("site.yml", base / "second")
    check = run_playbook("site.yml", base / "check", check=True)
    report = ROOT / "build/lab-timings.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(
        "".join(
            f"{name}: {run.seconds:.0f} s, changed={run.total('changed')}, "
            f"ok={run.total('ok')}, failures={run.total('failures')}\n"
            for name, run in (("deploy", first), ("re-run", second), ("check", check))
        )
    )
    write_section("Lab deploy, re-run and --check (lab tier)", "scripts/test lab (fixture deploy_runs)",
                  report.read_text())
    return {"first": first, "second": second, "check": check}


@pytest.fixture(scope="session")
def deployed(deploy_runs: dict[str, PlaybookRun]) -> None:
    """The stack is deployed (the first run passed)."""
