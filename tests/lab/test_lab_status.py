"""The status view on the lab (issue 12): after a deploy every instance is healthy and status
exits 0; a container stopped by hand, a container replaced by hand with another image, a member
left drained, the backend firewall unit and the metrics relay stopped each make it exit 1 naming
that item; status
(and its --check) changes nothing; site.yml puts everything back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from labkit import EMBED_HOST, LLM_HOST, ROOT, on_host, run_playbook

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from tests.ansible_env import ansible_env

STOPPED = "vllm_llama_gpu1_1"
REPLACED = "ollama_bge_gpu1"
DRAINED = "llama-gpu0-1"
IMPOSTOR = "10.99.0.6:5000/library/nginx:1.28.0"
DRAINED_FILE = "/var/lib/memoryx/gateway/drained.json"
FIREWALL = "memoryx-backend-firewall.service"
RELAY = "memoryx-mtail-relay"


def status() -> tuple[int, dict[str, Any]]:
    """`python -m memoryx_deploy status --json`: exit status and report."""
    done = subprocess.run([sys.executable, "-m", "memoryx_deploy", "status", "--json"], cwd=ROOT,
                          env=ansible_env(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def test_status_after_a_deploy_is_healthy_and_changes_nothing(deployed: None, tmp_path: Path) -> None:
    rc, report = status()
    assert (rc, report["problems"]) == (0, [])
    stack = build_stack(load_config([ROOT / "group_vars" / "all" / "memoryx.yml"]),
                        {"mx-llm-01": "10.99.0.10", "mx-embed-01": "10.99.0.65"})
    names = [i["name"] for i in [*stack["vllm_instances"], *stack["ollama_instances"]]]
    assert [r["instance"] for r in report["instances"]] == names
    for row in report["instances"]:
        assert (row["state"], row["health"], row["pool_state"]) == ("running", "healthy", "serving"), row
        assert row["model"] in ("llama3.1-8b", "qwen2.5-14b", "bge-m3")
        assert row["log_bytes"] > 0 and row["uptime_s"] >= 0
    vllm = [r for r in report["instances"] if r["kind"] == "vllm"]
    assert all(r["running"] is not None and r["waiting"] is not None for r in vllm)
    assert {(g["host"], g["gpu"]) for g in report["gpus"]} == {
        (host, gpu["index"]) for host, data in stack["hosts"].items() for gpu in data["gpus"]}
    assert [g["container"] for g in report["gateway"]] == ["memoryx_gateway", "memoryx_gateway_router"]
    for check in (False, True):
        run = run_playbook("playbooks/status.yml", tmp_path / f"check-{check}", check=check)
        assert run.rc == 0 and run.total("changed") == 0, run.failures()


def make_drift() -> str:
    """Five kinds of drift made by hand; returns the drained-members file as it was."""
    drained_before = on_host(EMBED_HOST, f"cat {DRAINED_FILE}").stdout
    on_host(LLM_HOST, f"docker stop {STOPPED}")
    on_host(EMBED_HOST, f"docker rm -f {REPLACED} && docker run -d --name {REPLACED} "
                        f"--label memoryx.role=ollama {IMPOSTOR} sleep infinity")
    on_host(EMBED_HOST, f"echo '{{\"drained\": [\"{DRAINED}\"]}}' > {DRAINED_FILE}")
    on_host(LLM_HOST, f"systemctl stop {FIREWALL}")
    on_host(EMBED_HOST, f"systemctl stop {RELAY}")
    return drained_before


def test_status_names_each_drift_and_site_puts_it_back(deployed: None, tmp_path: Path) -> None:
    drained_before = make_drift()
    try:
        rc, report = status()
    finally:
        run = run_playbook("site.yml", tmp_path / "restore")
    assert rc == 1
    problems = report["problems"]
    assert f"mx-llm-01: instance llama-gpu1-1 (container {STOPPED}) is exited (exit code 0)" in problems
    assert (f"mx-embed-01: instance bge-gpu1 (container {REPLACED}) runs image {IMPOSTOR}, "
            "the data says 10.99.0.6:5000/ollama/ollama:0.13.0") in problems
    assert (f"mx-embed-01: gateway member {DRAINED} is left drained "
            "(playbooks/restart_vllm.yml undrains it when its instance is back)") in problems
    assert ("mx-llm-01: the backend firewall unit is inactive: the instances' ports are open "
            "to the whole LAN") in problems
    assert (f"mx-embed-01: monitoring unit {RELAY} is inactive: this host's metrics or alerts are "
            "missing (site.yml starts it)") in problems
    rows = {r["instance"]: r for r in report["instances"]}
    assert (rows["llama-gpu1-1"]["state"], rows["llama-gpu1-1"]["pool_state"]) == ("exited", "failing")
    assert rows[DRAINED]["pool_state"] == "drained"
    assert rows["bge-gpu1"]["model"] is None
    # site.yml puts every item back, and status says so
    assert run.rc == 0, run.failures()
    assert on_host(EMBED_HOST, f"cat {DRAINED_FILE}").stdout == drained_before
    rc, report = status()
    assert (rc, report["problems"]) == (0, [])
