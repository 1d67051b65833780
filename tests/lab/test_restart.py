"""Rolling restart of one vLLM instance while MemoryX keeps calling the gateway (issue 5), over
TLS with client keep-alive (issue 11): the drain and undrain reload no gateway nginx."""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from labkit import EMBED_HOST, GATEWAY_URL, LLM_HOST, ROOT, on_host, run_playbook

from bench.figures import write_section
from tests.traffic import Traffic

REPORT = ROOT / "build/restart-report.txt"



def gateway_processes() -> dict[str, str]:
    """PIDs of every nginx process of the two gateway containers (a reload changes the workers)."""
    return {name: on_host(EMBED_HOST, f"docker top {name} -eo pid,args").stdout
            for name in ("memoryx_gateway", "memoryx_gateway_router")}


def served(port: int) -> float:
    """vllm:request_success_total of the instance on `port`, read on its host; -1 when it is down."""
    reply = on_host(LLM_HOST, f"curl -sf http://localhost:{port}/metrics", check=False)
    if reply.returncode != 0:
        return -1.0
    return sum(float(v) for v in re.findall(r"^vllm:request_success_total\{[^}]*\} ([0-9.e+]+)$", reply.stdout, re.M))


def container_id(name: str) -> str:
    return on_host(LLM_HOST, f"docker inspect -f '{{{{.Id}}}}' {name}").stdout.strip()


@pytest.fixture(scope="module", autouse=True)
def fresh_report() -> None:
    """This run's restarts only."""
    REPORT.unlink(missing_ok=True)


def report(line: str) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as out:
        out.write(line + "\n")
    write_section("Rolling restarts under client traffic (lab tier)",
                  "scripts/test lab (tests/lab/test_restart.py)", REPORT.read_text())


def test_unknown_instance_is_refused_with_the_valid_names(deployed: None, tmp_path: Path) -> None:
    run = run_playbook("playbooks/restart_vllm.yml", tmp_path, extravars={"vllm_restart": "llama-gpu9-9"})
    assert run.rc != 0
    message = " ".join(run.failures())
    assert "llama-gpu9-9" in message and "llama-gpu0-0" in message and "qwen-gpu2" in message


def test_restart_drops_no_request(deployed: None, api_key: str, tmp_path: Path) -> None:
    """8 keep-alive clients without retries, over TLS; the drain and undrain reload nothing."""
    before_id = container_id("vllm_llama_gpu0_1")
    processes = gateway_processes()
    with Traffic(f"{GATEWAY_URL}/v1", api_key, "llama3.1-8b", workers=8) as traffic:
        run = run_playbook("playbooks/restart_vllm.yml", tmp_path, extravars={"vllm_restart": "llama-gpu0-1"})
    report(
        f"restart llama-gpu0-1 (8 keep-alive clients, TLS): {run.seconds:.1f} s, "
        f"requests sent {traffic.tally.sent}, failed {traffic.tally.failed}"
    )
    assert run.rc == 0, run.failures()
    assert gateway_processes() == processes, "the gateway reloaded during the rolling restart"
    assert traffic.tally.sent > 0
    assert traffic.tally.failed == 0, traffic.tally.errors[:5]
    assert container_id("vllm_llama_gpu0_1") != before_id, "the container was not recreated"
    # Back in the pool: it takes traffic through the gateway again.
    baseline = served(11402)
    with Traffic(f"{GATEWAY_URL}/v1", api_key, "llama3.1-8b", workers=4, max_seconds=5):
        pass
    assert served(11402) > baseline


MODEL_DIR = "/data/projects/models/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4"
BREAKAGES = {  # what goes wrong -> (break it, mend it, what the failure must say)
    "model dir removed": (f"mv {MODEL_DIR} {MODEL_DIR}.away", f"mv {MODEL_DIR}.away {MODEL_DIR}", MODEL_DIR),
    "engine never healthy": (  # the container starts, then dies with its own log line
        f"cp {MODEL_DIR}/config.json /tmp/config.good && echo '{{broken' > {MODEL_DIR}/config.json",
        f"mv /tmp/config.good {MODEL_DIR}/config.json",
        "is not a valid JSON file",
    ),
}
OTHERS = {11401: "vllm_llama_gpu0_0", 11402: "vllm_llama_gpu0_1", 11403: "vllm_llama_gpu1_0"}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_failed_restart_keeps_serving_and_stays_out(
    deployed: None, api_key: str, tmp_path: Path, breakage: str
) -> None:
    """The failure path: the run fails saying why, the instance stays out of the pool, no other
    instance is touched, and no client request fails."""
    break_it, mend_it, words = BREAKAGES[breakage]
    on_host(LLM_HOST, break_it)
    try:
        others = {name: container_id(name) for name in OTHERS.values()}
        with Traffic(f"{GATEWAY_URL}/v1", api_key, "llama3.1-8b") as traffic:
            run = run_playbook("playbooks/restart_vllm.yml", tmp_path, extravars={"vllm_restart": "llama-gpu1-1"})
        report(
            f"failed restart llama-gpu1-1 ({breakage}): {run.seconds:.1f} s, "
            f"requests sent {traffic.tally.sent}, failed {traffic.tally.failed}"
        )
        assert run.rc != 0
        message = " ".join(run.failures())
        assert "llama-gpu1-1" in message and words in message
        assert traffic.tally.failed == 0, traffic.tally.errors[:5]
        assert {name: container_id(name) for name in OTHERS.values()} == others
        # Out of the pool: the gateway sends it nothing, and serves every request with the rest.
        baseline = served(11404), sum(served(port) for port in OTHERS)
        with Traffic(f"{GATEWAY_URL}/v1", api_key, "llama3.1-8b", workers=4, max_seconds=3) as after:
            pass
        assert after.tally.failed == 0
        assert served(11404) == baseline[0]
        assert sum(served(port) for port in OTHERS) > baseline[1]
    finally:
        on_host(LLM_HOST, mend_it)
        restore = run_playbook(
            "playbooks/restart_vllm.yml", tmp_path / "restore", extravars={"vllm_restart": "llama-gpu1-1"}
        )
        assert restore.rc == 0, restore.failures()


def test_rollout_recreates_only_what_changed(deployed: None, tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "group_vars/all/memoryx.yml").read_text())
    hosts = copy.deepcopy(data["memoryx_gpu_hosts"])
    hosts["mx-llm-01"]["vllm_instances"][0][0]["args"] = {"max_num_seqs": 8}
    names = ["vllm_llama_gpu0_0", "vllm_llama_gpu0_1", "vllm_qwen_gpu2"]
    ids = {name: container_id(name) for name in names}
    rollout = {"vllm_restart": "all", "vllm_restart_mode": "changed"}
    run = run_playbook(
        "playbooks/restart_vllm.yml",
        tmp_path / "new",
        extravars={**rollout, "memoryx_gpu_hosts": hosts},
    )
    assert run.rc == 0, run.failures()
    after = {name: container_id(name) for name in names}
    assert after["vllm_llama_gpu0_0"] != ids["vllm_llama_gpu0_0"]
    assert {n: after[n] for n in names[1:]} == {n: ids[n] for n in names[1:]}
    assert json.loads(on_host(LLM_HOST, "curl -s localhost:11401/sim/info").stdout)["args"]["max_num_seqs"] == 8
    back = run_playbook("playbooks/restart_vllm.yml", tmp_path / "back", extravars=rollout)
    assert back.rc == 0, back.failures()
    assert container_id("vllm_qwen_gpu2") == ids["vllm_qwen_gpu2"]


def test_pool_of_one_answers_503_with_retry_after(deployed: None, api_key: str, tmp_path: Path) -> None:
    """Qwen has no second member: during its restart clients get an honest 503 + Retry-After, never a hang or reset."""
    outcomes: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        body = json.dumps({"model": "qwen2.5-14b", "max_tokens": 4, "messages": [{"role": "user", "content": "1+1=?"}]})
        while not stop.is_set():
            request = urllib.request.Request(
                f"{GATEWAY_URL}/v1/chat/completions",
                data=body.encode(),
                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as reply:
                    outcomes.append(str(reply.status))
            except urllib.error.HTTPError as error:
                code = json.loads(error.read() or b"{}").get("error", {}).get("code")
                outcomes.append(f"{error.code} retry-after={error.headers.get('Retry-After')} {code}")
            except OSError as error:
                outcomes.append(f"error {error}")
            stop.wait(0.05)  # pacing: a client calling steadily, not a flood

    worker = threading.Thread(target=ask, daemon=True)
    worker.start()
    try:
        run = run_playbook("playbooks/restart_vllm.yml", tmp_path, extravars={"vllm_restart": "qwen-gpu2"})
    finally:
        stop.set()
        worker.join(timeout=120)
    unavailable = [o for o in outcomes if o.startswith("503")]
    report(f"restart qwen-gpu2 (pool of one): {run.seconds:.1f} s, requests {len(outcomes)}, 503 {len(unavailable)}")
    assert run.rc == 0, run.failures()
    assert set(outcomes) <= {"200", "503 retry-after=30 pool_restarting"}, sorted(set(outcomes))
    assert unavailable, "the restart window was never seen by a client"
    assert outcomes[-1] == "200"
