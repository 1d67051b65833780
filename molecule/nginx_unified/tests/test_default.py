"""Verify role nginx_unified: the gateway container, routing to the simulators, reload."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from conftest import ScenarioPlaybook
from monitoring_testkit import poll

SCENARIO = Path(__file__).resolve().parent.parent
ROLE_VARS = yaml.safe_load((SCENARIO / "converge.yml").read_text())[0]["tasks"][0]["vars"]
PORT = ROLE_VARS["nginx_unified_listen_port"]
CONTAINER = "memoryx_gateway"  # the role's default names: the client side (TLS, keep-alive)
ROUTER = "memoryx_gateway_router"  # routes, keys, pools, drains and the access log
LLAMA = ROLE_VARS["nginx_unified_pools"]["llama"]["members"][0]
SUCCESS = re.compile(r"^vllm:request_success_total\{[^}]*\} ([0-9.]+)$", re.M)


def gateway(host: Any, path: str, body: Any = None) -> tuple[int, str]:
    data = "" if body is None else f"-H 'Content-Type: application/json' -d {json.dumps(json.dumps(body))}"
    out = host.check_output(
        f"curl -sS --max-time 10 -o /tmp/mxmol-body -w '%{{http_code}}' {data} http://127.0.0.1:{PORT}{path}"
        " && printf '\\n' && cat /tmp/mxmol-body"
    )
    status, _, text = out.partition("\n")
    return int(status), text


def inspect(host: Any) -> dict[str, Any]:
    return inspect_container(host, CONTAINER)


def inspect_container(host: Any, name: str) -> dict[str, Any]:
    return dict(json.loads(host.check_output(f"docker inspect {name}"))[0])


def llama_successes(host: Any) -> float:
    metrics = host.check_output(f"curl -fsS --max-time 5 http://{LLAMA['address']}:{LLAMA['port']}/metrics")
    return sum(float(v) for v in SUCCESS.findall(metrics))


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


def test_gateway_container_runs_on_the_host_network(host: Any) -> None:
    state = inspect(host)
    assert state["State"]["Status"] == "running"
    assert state["HostConfig"]["NetworkMode"] == "host"
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert state["Config"]["Image"] == ROLE_VARS["nginx_unified_image"]


def test_live_config_is_mounted_read_only(host: Any) -> None:
    mounts = inspect(host)["Mounts"]
    assert [(m["Source"], m["Destination"], m["RW"]) for m in mounts] == [("/etc/memoryx/gateway", "/etc/nginx", False)]


def test_nginx_accepts_its_configuration(host: Any) -> None:
    result = host.run(f"docker exec {CONTAINER} nginx -t")
    assert result.rc == 0, result.stderr
    assert "test is successful" in result.stderr


def test_listens_on_the_gateway_port(host: Any) -> None:
    assert host.socket(f"tcp://0.0.0.0:{PORT}").is_listening


def test_health_is_200_ok(host: Any) -> None:
    assert gateway(host, "/health") == (200, "OK")


def test_chat_routed_by_model_reaches_the_vllm_simulator(host: Any) -> None:
    before = llama_successes(host)
    status, text = gateway(host, "/v1/chat/completions", chat("llama3.1-8b"))
    assert status == 200, text
    reply = json.loads(text)
    assert reply["model"] == "llama3.1-8b"
    assert reply["id"].startswith("chatcmpl-")
    assert llama_successes(host) == before + 1
    logs = host.check_output(f"docker logs --tail 20 {ROUTER} 2>/dev/null")
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    chats = [line for line in lines if line["uri"] == "/v1/chat/completions"]
    assert chats[-1]["upstream_addr"] == f"{LLAMA['address']}:{LLAMA['port']}"
    assert chats[-1]["pool"] == "llama"


def test_unknown_model_is_refused_by_the_gateway(host: Any) -> None:
    status, text = gateway(host, "/v1/chat/completions", chat("gpt-4"))
    assert status == 404
    assert json.loads(text)["error"]["code"] == "model_not_found"


def test_embeddings_reach_the_ollama_simulator(host: Any) -> None:
    status, text = gateway(host, "/v1/embeddings", {"model": "bge-m3", "input": "hello"})
    assert status == 200, text
    assert len(json.loads(text)["data"][0]["embedding"]) == 1024


def test_models_lists_the_served_models(host: Any) -> None:
    status, text = gateway(host, "/v1/models")
    assert status == 200
    assert sorted(m["id"] for m in json.loads(text)["data"]) == sorted(ROLE_VARS["nginx_unified_models"])


# A keep-alive client on the instance: GET /health every 10 ms over one connection, which it
# opens again only after an answer said "Connection: close"; no retries. It stops when STOP
# exists (at most 300 s), then writes its tally to OUT. Its connection is idle between two
# requests, so a reload that closed idle connections would fail its next request.
KEEPALIVE_CLIENT = """
import http.client, json, os, sys, time
port, out, stop, started = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
tally = {"sent": 0, "failed": 0, "connections": 0, "errors": []}
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
deadline = time.monotonic() + 300
while not os.path.exists(stop) and time.monotonic() < deadline:
    tally["connections"] += conn.sock is None
    try:
        conn.request("GET", "/health")
        reply = conn.getresponse()
        reply.read()
        tally["sent"] += 1
        if reply.status != 200:
            tally["failed"] += 1
            tally["errors"].append(reply.status)
        open(started, "a").close()
    except Exception as error:
        tally["sent"] += 1
        tally["failed"] += 1
        tally["errors"].append(repr(error))
        conn.close()
    time.sleep(0.01)
with open(out, "w") as f:
    json.dump(tally, f)
"""


def test_a_change_of_the_client_side_reloads_it_quiesced(
        host: Any, scenario_playbook: ScenarioPlaybook) -> None:
    """A change of the client side's own settings (its keep-alive timeout) reloads it through
    the handler, quiesced (reload.sh -q inside the container): a keep-alive client without
    retries loses nothing, and was told to reconnect (Connection: close) instead of having its
    idle connection closed under it; the closing flag is gone afterwards."""
    work = "/tmp/mxmol-keepalive"
    host.check_output(f"rm -rf {work} && mkdir -p {work}")
    host.check_output(f"cat > {work}/client.py <<'EOF'\n{KEEPALIVE_CLIENT}\nEOF")
    host.check_output(f"nohup python3 {work}/client.py {PORT} {work}/out.json {work}/stop "
                      f"{work}/started > {work}/client.log 2>&1 &")
    assert poll(lambda: host.file(f"{work}/started").exists, bool, 30), host.file(f"{work}/client.log").content_string
    try:
        changed = scenario_playbook("converge.yml", "-e", "nginx_unified_client_keepalive_timeout=70s")
    finally:
        host.check_output(f"touch {work}/stop")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert re.search(r"RUNNING HANDLER \[nginx_unified : Reload gateway\][^\n]*\n[^\n]*\n?\s*changed",
                     changed.stdout), changed.stdout
    tally = json.loads(poll(lambda: host.file(f"{work}/out.json").content_string if
                            host.file(f"{work}/out.json").exists else "", bool, 30))
    assert tally["failed"] == 0, tally["errors"][:5]
    assert tally["sent"] > 50
    assert tally["connections"] >= 2  # quiesced: an answer said "Connection: close"
    assert host.run(f"docker exec {CONTAINER} test -e /run/memoryx-gateway-closing").rc == 1
    restore = scenario_playbook("converge.yml")
    assert restore.returncode == 0, restore.stdout + restore.stderr


def test_a_drain_takes_effect_without_any_reload(host: Any, scenario_playbook: ScenarioPlaybook) -> None:
    """Last: drains llama (drain.yml): the gateway reads the drained members at request time, so
    no nginx reloads or restarts; then restores (converge.yml)."""
    # a reload replaces every worker process: the process list stays the same without one
    processes = {name: host.check_output(f"docker top {name} -o pid,args") for name in (CONTAINER, ROUTER)}
    started = {name: inspect_container(host, name)["State"]["StartedAt"] for name in (CONTAINER, ROUTER)}
    result = scenario_playbook("drain.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not re.search(r"RUNNING HANDLER \[nginx_unified : Reload[^\n]*\n[^\n]*\n?\s*changed",
                         result.stdout)
    try:
        status, text = gateway(host, "/v1/chat/completions", chat("llama3.1-8b"))
        assert status == 503
        assert json.loads(text)["error"]["code"] == "pool_restarting"
        for name in (CONTAINER, ROUTER):
            assert inspect_container(host, name)["State"]["StartedAt"] == started[name]
            assert host.check_output(f"docker top {name} -o pid,args") == processes[name]
    finally:
        restore = scenario_playbook("converge.yml")
    assert restore.returncode == 0, restore.stdout + restore.stderr
    assert gateway(host, "/v1/chat/completions", chat("llama3.1-8b"))[0] == 200
