"""A lab host rebooted under client traffic comes back on its own, in the deploy's waves: every
instance healthy and the gateway serving every model again, no container crashed during the
boot, the other host's pool lost nothing, and status is green.

A lab host is a systemd container stopped with SIGRTMIN+3 (lab/lab.sh): `docker restart` of it
is an orderly shutdown and a boot, as `reboot` on a server. Its /run is a tmpfs, so the GPU
stand-in's memory ledger starts empty, as a GPU does after a power cycle."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from labkit import EMBED_HOST, GATEWAY_URL, LLM_HOST, ROOT, on_host, sh
from openai import OpenAI

from bench.figures import write_section
from tests.ansible_env import ansible_env

REPORT = ROOT / "build/reboot-report.txt"
MODELS = {"llama3.1-8b": "chat", "qwen2.5-14b": "chat", "bge-m3": "embed"}
BOOT_DEADLINE = 300.0  # seconds: bounded waits, each ends as soon as its condition holds


def status_report() -> tuple[int, list[str]]:
    """`python -m memoryx_deploy status --json`: its exit status and the problems it names."""
    done = subprocess.run([sys.executable, "-m", "memoryx_deploy", "status", "--json"], cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, list(json.loads(done.stdout)["problems"])


def managed(host: str) -> dict[str, dict[str, object]]:
    """Every container on `host` with its state, health and restart count."""
    names = on_host(host, "docker ps -a --format '{{.Names}}'").stdout.split()
    if not names:
        return {}
    data = json.loads(on_host(host, "docker inspect " + " ".join(names)).stdout)
    return {c["Name"].lstrip("/"): {"status": c["State"]["Status"],
                                    "health": (c["State"].get("Health") or {}).get("Status", ""),
                                    "restarts": c["RestartCount"]} for c in data}


def crashes_since_boot(host: str) -> list[str]:
    """Containers that died since the host's Docker started: a crash, not a stop (Docker keeps
    its events in memory, so a boot starts with none)."""
    out = on_host(host, "docker events --since 0 --until \"$(date +%s)\" --filter event=die "
                        "--format '{{.Actor.Attributes.name}} {{.Actor.Attributes.exitCode}}'").stdout
    return [line for line in out.splitlines() if line.strip()]


def answers(client: OpenAI, model: str) -> bool:
    try:
        if MODELS[model] == "embed":
            return len(client.embeddings.create(model=model, input="ping").data[0].embedding) > 0
        reply = client.chat.completions.create(model=model, max_tokens=4,
                                               messages=[{"role": "user", "content": "ping"}])
        return bool(reply.choices)
    except Exception:  # any failure means: not serving yet
        return False


@dataclass
class Embeddings:
    """One no-retry client embedding all the time through the gateway: the pool that survives."""

    client: OpenAI
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        deadline = time.monotonic() + BOOT_DEADLINE * 2
        while not self.stop.is_set() and time.monotonic() < deadline:
            self.sent += 1
            try:
                self.client.embeddings.create(model="bge-m3", input="memory of a reboot")
            except Exception as error:  # counted, then shown by the assertion
                self.failed.append(repr(error))


@contextmanager
def embedding_traffic(api_key: str) -> Iterator[Embeddings]:
    traffic = Embeddings(OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=30))
    thread = threading.Thread(target=traffic.run, daemon=True)
    thread.start()
    try:
        yield traffic
    finally:
        traffic.stop.set()
        thread.join(timeout=60)


def boot_unit_settled(host: str) -> str:
    """memoryx-boot's state once it has left `activating` (its last wave can still be confirming
    a warm-up when the containers already answer), or `activating` at the deadline."""
    deadline = time.monotonic() + BOOT_DEADLINE
    while True:
        state = on_host(host, "systemctl is-active memoryx-boot", check=False).stdout.strip()
        if state != "activating" or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def reboot(host: str, client: OpenAI) -> tuple[float, float]:
    """Reboot `host`; seconds until its instances are healthy, and until the gateway serves
    every model. Returns once the boot unit has finished too, so that its journal is whole."""
    start = time.monotonic()
    sh("docker", "restart", "--time", "180", host, timeout=300)
    healthy = serving = 0.0
    while time.monotonic() - start < BOOT_DEADLINE and not (healthy and serving):
        state = managed(host) if on_host(host, "docker info >/dev/null 2>&1", check=False).returncode == 0 else {}
        if not healthy and state and all(c["status"] == "running" and c["health"] in ("", "healthy")
                                         for c in state.values()):
            healthy = time.monotonic() - start
        if not serving and all(answers(client, model) for model in MODELS):
            serving = time.monotonic() - start
        time.sleep(0.5)
    assert healthy and serving, f"{host} not back within {BOOT_DEADLINE} s: {managed(host)}"
    assert boot_unit_settled(host) == "active", on_host(host, "systemctl status memoryx-boot", check=False).stdout
    return healthy, serving


@pytest.fixture(scope="module")
def client(api_key: str) -> OpenAI:
    return OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=30)


def record(line: str) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as out:
        out.write(line + "\n")
    write_section("Reboots under client traffic (lab tier)", "scripts/test lab (tests/lab/test_reboot.py)",
                  REPORT.read_text())


@pytest.fixture(scope="module", autouse=True)
def fresh_report() -> None:
    REPORT.unlink(missing_ok=True)


def test_the_llm_host_reboots_in_waves_and_the_embeddings_lose_nothing(
        deployed: None, api_key: str, client: OpenAI) -> None:
    with embedding_traffic(api_key) as traffic:
        healthy, serving = reboot(LLM_HOST, client)
    crashes = crashes_since_boot(LLM_HOST)
    restarts = {name: c["restarts"] for name, c in managed(LLM_HOST).items()}
    record(f"reboot {LLM_HOST}: every instance healthy after {healthy:.1f} s, the gateway serves every "
           f"model after {serving:.1f} s; crashes during boot {len(crashes)}; embeddings during the "
           f"reboot {traffic.sent} sent, {len(traffic.failed)} failed")
    assert crashes == [], crashes
    assert set(restarts.values()) == {0}, restarts
    assert traffic.sent > 0 and traffic.failed == [], traffic.failed[:3]
    boot_log = on_host(LLM_HOST, "journalctl -b -u memoryx-boot --no-pager -o cat").stdout
    assert "wave 1: starting vllm_llama_gpu0_1, vllm_llama_gpu1_1" in boot_log, boot_log
    assert boot_log.index("wave 0: vllm_llama_gpu0_0 is up") < boot_log.index("wave 1: starting")
    rc, problems = status_report()
    assert (rc, problems) == (0, [])


def test_the_gateway_host_reboots_in_waves(deployed: None, client: OpenAI) -> None:
    healthy, serving = reboot(EMBED_HOST, client)
    crashes = crashes_since_boot(EMBED_HOST)
    record(f"reboot {EMBED_HOST} (the gateway's host): every container up after {healthy:.1f} s, the "
           f"gateway serves every model after {serving:.1f} s; crashes during boot {len(crashes)}")
    assert crashes == [], crashes
    boot_log = on_host(EMBED_HOST, "journalctl -b -u memoryx-boot --no-pager -o cat").stdout
    assert boot_log.index("wave 0: starting ollama_bge_gpu0, ollama_bge_gpu1") < boot_log.index(
        "wave 1: starting memoryx_gateway_router, memoryx_gateway"), boot_log
    rc, problems = status_report()
    assert (rc, problems) == (0, [])


def test_the_boot_unit_follows_the_data(deployed: None) -> None:
    plan = json.loads(on_host(LLM_HOST, "cat /etc/memoryx/boot.json").stdout)
    assert plan["waves"] == [["vllm_llama_gpu0_0", "vllm_llama_gpu1_0", "vllm_qwen_gpu2"],
                             ["vllm_llama_gpu0_1", "vllm_llama_gpu1_1"]]
    for host in (LLM_HOST, EMBED_HOST):
        assert on_host(host, "systemctl is-enabled memoryx-boot").stdout.strip() == "enabled"
        policies = on_host(host, "docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "
                                 "$(docker ps -q)").stdout.split()
        assert policies and set(policies) == {"unless-stopped"}
