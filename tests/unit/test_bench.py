"""memoryx_deploy/operate/bench.py (plan, table, JSON, chart), its load generator data/bench_load.py
against a loopback stub, and playbooks/bench.yml's parameter checks on the controller alone."""

from __future__ import annotations

import copy
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import wrap_var

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.operate import bench
from memoryx_deploy.schema.stack import StackError
from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOAD = ROOT / "memoryx_deploy/data/bench_load.py"
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    config = load_config([ROOT / "group_vars/all/memoryx.yml"])
    config["gateway"]["tls"] = {**config["gateway"]["tls"], "site_ca_dir": "/pki", "certificate": "site_ca"}
    return dict(build_stack(config, ADDRESSES))


# --------------------------------------------------------------------------- parameters


def test_defaults_are_the_documents_benchmark(stack: dict[str, Any]) -> None:
    params = bench.parameters({}, list(stack["pools"]))
    assert (params.requests, params.concurrency, params.pools) == (10, (1, 2, 4, 8, 16), ("llama", "qwen", "bge"))
    assert params.output_dir == "build/bench"


def test_extra_vars_as_text_are_read() -> None:
    params = bench.parameters({"bench_requests": "20", "bench_concurrency": "16,1,4,4", "bench_pools": "qwen,llama",
                               "bench_max_tokens": "32", "bench_run_timeout": "30"}, ["llama", "qwen", "bge"])
    assert (params.requests, params.concurrency, params.pools) == (20, (1, 4, 16), ("llama", "qwen"))
    assert (params.max_tokens, params.run_timeout) == (32, 30.0)


def test_every_bad_parameter_is_named_with_its_value() -> None:
    with pytest.raises(StackError) as caught:
        bench.parameters({"bench_requests": "ten", "bench_concurrency": [0, 4, 65], "bench_pools": "lama",
                          "bench_request": 3, "bench_prompt": " ", "bench_max_tokens": 0,
                          "bench_request_timeout": -1, "bench_run_timeout": "soon", "bench_output_dir": ""},
                         ["llama", "qwen", "bge"])
    assert caught.value.problems == [
        "bench_request is not a parameter of the benchmark; did you mean bench_requests?",
        "bench_requests must be a whole number from 1 to 1000, got 'ten'",
        "bench_concurrency: 0 is not a concurrency from 1 to 64 (the gateway admits 64 requests in progress "
        "per client)",
        "bench_concurrency: 65 is not a concurrency from 1 to 64 (the gateway admits 64 requests in progress "
        "per client)",
        "bench_pools: 'lama' is not a pool of the stack (pools: llama, qwen, bge, or all)",
        "bench_prompt must be a non-empty string, got ' '",
        "bench_max_tokens must be a whole number from 1 to 4096, got 0",
        "bench_request_timeout must be seconds, more than 0 and at most 3600, got -1",
        "bench_run_timeout must be seconds, more than 0 and at most 3600, got 'soon'",
        "bench_output_dir must be a directory path, got ''",
    ]


@pytest.mark.parametrize(("value", "problem"), [
    (1001, "bench_requests must be a whole number from 1 to 1000, got 1001"),
    (2.5, "bench_requests must be a whole number from 1 to 1000, got 2.5"),
    (True, "bench_requests must be a whole number from 1 to 1000, got True"),
])
def test_request_counts_are_bounded(value: Any, problem: str) -> None:
    with pytest.raises(StackError, match=problem.replace(".", r"\.")):
        bench.parameters({"bench_requests": value}, ["llama"])


def test_concurrency_levels_are_bounded_in_number() -> None:
    with pytest.raises(StackError, match="at most 10 levels, got 11"):
        bench.parameters({"bench_concurrency": list(range(1, 12))}, ["llama"])


# --------------------------------------------------------------------------- plan


def test_plan_runs_each_instance_alone_then_the_gateway(stack: dict[str, Any]) -> None:
    plan = bench.bench_plan(stack, {"bench_concurrency": "1,4,16"}, "/repo")
    llama = [r for r in plan["runs"] if r["pool"] == "llama"]
    assert [(r["mode"], r["member"], r["concurrency"], r["requests"]) for r in llama] == [
        ("serial", "llama-gpu0-0", 1, 10), ("serial", "llama-gpu0-1", 1, 10), ("serial", "llama-gpu1-0", 1, 10),
        ("serial", "llama-gpu1-1", 1, 10),
        ("gateway", None, 1, 10), ("gateway", None, 4, 12), ("gateway", None, 16, 16)]
    assert llama[0]["url"] == "http://192.168.31.10:11401/v1/chat/completions"
    assert llama[-1]["url"] == "https://192.168.31.65:11436/v1/chat/completions"
    assert [r["auth"] for r in llama] == [False] * 4 + [True] * 3
    assert llama[-1]["label"] == "llama: gateway, 16 requests at 16 concurrent"
    bge = [r for r in plan["runs"] if r["pool"] == "bge"]
    assert [r["url"] for r in bge[:3]] == ["http://127.0.0.1:11434/v1/embeddings",
                                           "http://127.0.0.1:11435/v1/embeddings",
                                           "https://192.168.31.65:11436/v1/embeddings"]
    assert plan["bodies"]["bge"] == {"model": "bge-m3", "input": bench.DEFAULT_PROMPT}
    assert plan["bodies"]["qwen"]["model"] == "qwen2.5-14b"
    assert plan["bodies"]["llama"]["max_tokens"] == 64
    assert plan["pools"]["bge"]["members"] == ["bge-gpu0", "bge-gpu1"]
    assert plan["ca_bundle"] == "/pki/ca.crt"
    assert plan["output_dir"] == "/repo/build/bench"
    # 7 instances x 10 serial, and 10 + 12 + 16 through the gateway for each of 3 pools
    assert sum(r["requests"] for r in plan["runs"]) == 7 * 10 + 3 * 38
    assert plan["summary"].startswith("16 runs, 184 requests in all, from mx-embed-01")


def test_plan_for_chosen_pools_and_an_absolute_output_dir(stack: dict[str, Any]) -> None:
    plan = bench.bench_plan(stack, {"bench_pools": ["qwen"], "bench_output_dir": "/tmp/x/../out"}, "/repo")
    assert {r["pool"] for r in plan["runs"]} == {"qwen"}
    assert plan["output_dir"] == "/tmp/out"


@pytest.mark.parametrize(("remove", "path"), [
    (set(), "/v1/embeddings"),  # the document's URL
    ({"/v1/embeddings"}, "/embed/v1/embeddings"),  # not under /api/: the stripped /embed/ route
    ({"/v1/embeddings", "/embed/"}, None),
])
def test_gateway_path_from_the_route_table(stack: dict[str, Any], remove: set[str], path: str | None) -> None:
    changed = copy.deepcopy(stack)
    changed["gateway"]["routes"] = [r for r in stack["gateway"]["routes"] if r["path"] not in remove]
    assert bench.gateway_path(changed, "bge", "bge-m3", "/v1/embeddings") == path
    if path is None:
        with pytest.raises(StackError, match="pool 'bge': no gateway route reaches /v1/embeddings"):
            bench.bench_plan(changed, {}, "/repo")


def test_qwen_uses_the_model_routed_path_and_falls_back_to_its_prefix(stack: dict[str, Any]) -> None:
    assert bench.gateway_path(stack, "qwen", "qwen2.5-14b", "/v1/chat/completions") == "/v1/chat/completions"
    changed = copy.deepcopy(stack)
    changed["gateway"]["routes"] = [r for r in stack["gateway"]["routes"] if not r["route_by_model"]]
    assert bench.gateway_path(changed, "qwen", "qwen2.5-14b", "/v1/chat/completions") == "/qwen/v1/chat/completions"


def test_gateway_runs_send_whole_rounds() -> None:
    assert [bench.gateway_requests(10, c) for c in (1, 2, 4, 8, 16)] == [10, 10, 12, 16, 16]


# --------------------------------------------------------------------------- report


def document_raw() -> dict[str, Any]:
    """The design document's embedding benchmark as results: 10 requests on GPU0 in 1.768 s,
    on GPU1 in 1.813 s, through the load balancer concurrently in 0.650 s."""
    plan = {
        "gateway": "https://gw:11436", "parameters": {"requests": 10, "max_tokens": 64},
        "pools": {"bge": {"kind": "ollama", "model": "bge-m3", "members": ["gpu0", "gpu1"]}},
        "runs": [
            {"pool": "bge", "mode": "serial", "member": "gpu0", "concurrency": 1, "url": "http://a:11434/x"},
            {"pool": "bge", "mode": "serial", "member": "gpu1", "concurrency": 1, "url": "http://a:11435/x"},
            {"pool": "bge", "mode": "gateway", "member": None, "concurrency": 1, "url": "https://gw:11436/x"},
            {"pool": "bge", "mode": "gateway", "member": None, "concurrency": 10, "url": "https://gw:11436/x"},
        ],
    }

    def result(seconds: float, failed: int = 0) -> dict[str, Any]:
        latencies = [seconds / 10] * (10 - failed) + [None] * failed
        return {"requests": 10, "ok": 10 - failed, "failed": failed, "seconds": seconds, "latencies": latencies,
                "statuses": {"200": 10 - failed}, "errors": ["HTTP 502: x"] if failed else [],
                "info": {"simulator": "ollama", "embed_ms": 20.0, "num_parallel": 4}}

    return {"plan": plan, "results": [result(1.768), result(1.813), result(1.9, failed=1), result(0.650)],
            "load_host": "mx-embed-01", "generated": "2026-01-01T00:00:00+00:00"}


def test_speedup_is_over_the_mean_of_the_instances_alone_as_the_document_computes() -> None:
    document = bench.report(document_raw())
    pool = document["pools"]["bge"]
    assert [round(r["qps"], 1) for r in pool["runs"]] == [5.7, 5.5, 4.7, 15.4]
    assert round(pool["baseline_qps"], 3) == round((10 / 1.768 + 10 / 1.813) / 2, 3)
    assert [r["speedup"] and round(r["speedup"], 2) for r in pool["runs"]] == [None, None, 0.85, 2.75]
    assert pool["headline"]["concurrency"] == 10
    assert round(pool["headline"]["speedup"], 2) == 2.75
    assert pool["engine"] == {"simulator": "ollama", "embed_ms": 20.0, "num_parallel": 4}
    assert document["failed"] == 1
    assert pool["runs"][2]["errors"] == ["HTTP 502: x"]
    assert pool["runs"][0]["latency_p50"] == pytest.approx(0.1768)


def test_table_has_the_documents_columns_and_counts_failures() -> None:
    table = bench.format_table(bench.report(document_raw()))
    assert "| mode | requests | failed | seconds | QPS | speed-up |" in table
    assert "| gpu0 alone, serial | 10 | 0 | 1.768 | 5.7/s | - |" in table
    assert "| gpu1 alone, serial | 10 | 0 | 1.813 | 5.5/s | - |" in table
    assert "| gateway, 1 concurrent | 10 | 1 | 1.900 | 4.7/s | 0.85x |" in table
    assert "| gateway, 10 concurrent | 10 | 0 | 0.650 | 15.4/s | 2.75x |" in table
    assert "bge: gateway at 10 concurrent 15.4/s = 2.75x one instance serially (5.6/s, mean of 2)" in table
    assert "Ollama simulator: 20 ms per embedding" in table
    assert table.endswith("failed requests: 1\n")


def test_a_real_engine_is_said_to_be_one() -> None:
    raw = document_raw()
    for result in raw["results"]:
        result["info"] = None
    assert "engine: real (no simulator settings reported)" in bench.format_table(bench.report(raw))


def test_vllm_simulator_settings_are_read_from_its_info() -> None:
    info = {"simulator": "vllm", "settings": {"ttft_ms": 30.0, "tpot_ms": 5.0, "load_seconds": 2.0,
                                              "batch_cost": 0.06},
            "args": {"max_num_seqs": 16, "port": 8000}}
    assert bench.engine_settings(info) == {"simulator": "vllm", "ttft_ms": 30.0, "tpot_ms": 5.0,
                                           "batch_cost": 0.06, "max_num_seqs": 16}
    assert bench.engine_settings({"object": "error"}) is None


def test_results_must_match_the_plan() -> None:
    raw = document_raw()
    raw["results"].pop()
    with pytest.raises(ValueError, match="4 runs planned, 3 results"):
        bench.report(raw)


def test_outputs_json_table_and_png(tmp_path: Path) -> None:
    document = bench.report(document_raw())
    paths = bench.write_outputs(document, tmp_path / "out")
    assert json.loads(paths["json"].read_text()) == json.loads(json.dumps(document))
    assert paths["table"].read_text() == bench.format_table(document)
    assert paths["chart"].read_bytes().startswith(PNG)
    assert paths["chart"].stat().st_size > 10_000


def test_report_command_reads_stdin(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "memoryx_deploy.operate.bench", "report", "--out", str(tmp_path)],
                         input=json.dumps(document_raw()), cwd=ROOT, text=True, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "| gateway, 10 concurrent | 10 | 0 | 0.650 | 15.4/s | 2.75x |" in run.stdout
    assert f"wrote {tmp_path / 'bench.png'}" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bench.json", "bench.md", "bench.png"]


# --------------------------------------------------------------------------- filter shim


def test_filter_shim_names_the_bad_parameter(stack: dict[str, Any]) -> None:
    spec = importlib.util.spec_from_file_location("memoryx_bench_shim", ROOT / "plugins/filter/memoryx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plan = module.FilterModule().filters()["memoryx_bench_plan"]
    assert plan(wrap_var(stack), wrap_var({"bench_requests": "3"}), "/r")["runs"][0]["requests"] == 3
    with pytest.raises(AnsibleFilterError, match=r"1 problem with the benchmark's parameters \(nothing was sent\)"
                                                 r":\n - bench_pools: 'x' is not a pool"):
        plan(stack, {"bench_pools": "x"}, "/r")


# --------------------------------------------------------------------------- load generator


class Stub(BaseHTTPRequestHandler):
    """/ok answers, /fail 500, /empty 200 with an error, /slow after 0.2 s; counts what it saw."""

    seen: ClassVar[list[tuple[str, str | None]]] = []
    in_flight: ClassVar[int] = 0
    most: ClassVar[int] = 0
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.reply(200, {"simulator": "vllm", "settings": {"ttft_ms": 1.0}} if self.path == "/sim/info" else [])

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with Stub.lock:
            Stub.seen.append((self.path, self.headers.get("Authorization")))
            Stub.in_flight += 1
            Stub.most = max(Stub.most, Stub.in_flight)
        try:
            if self.path == "/slow":
                time.sleep(0.2)  # service time, not a wait for readiness
            if self.path == "/fail":
                self.reply(500, {"error": {"message": "boom"}})
            elif self.path == "/empty":
                self.reply(200, {"error": "nothing"})
            else:
                self.reply(200, {"object": "list", "data": []})
        finally:
            with Stub.lock:
                Stub.in_flight -= 1

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def stub() -> Iterator[str]:
    Stub.seen, Stub.in_flight, Stub.most = [], 0, 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def load(tmp_path: Path, url: str, *extra: str) -> dict[str, Any]:
    body = tmp_path / "body.json"
    body.write_text('{"model": "m"}')
    run = subprocess.run([sys.executable, str(LOAD), "--url", url, "--body-file", str(body), *extra],
                         text=True, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr
    result: dict[str, Any] = json.loads(run.stdout)
    return result


def test_load_serial_counts_every_request(tmp_path: Path, stub: str) -> None:
    result = load(tmp_path, stub + "/ok", "--requests", "5", "--info-path", "/sim/info")
    assert (result["requests"], result["ok"], result["failed"], result["concurrency"]) == (5, 5, 0, 1)
    assert len(result["latencies"]) == 5 and all(x > 0 for x in result["latencies"])
    assert result["statuses"] == {"200": 5}
    assert result["info"] == {"simulator": "vllm", "settings": {"ttft_ms": 1.0}}
    assert len(Stub.seen) == 6  # one warm-up, untimed
    assert Stub.most == 1


def test_load_concurrent_keeps_that_many_in_flight(tmp_path: Path, stub: str) -> None:
    key = tmp_path / "key"
    key.write_text("sk-test-0123456789\n")
    result = load(tmp_path, stub + "/slow", "--requests", "8", "--concurrency", "4", "--warmup", "0",
                  "--key-file", str(key))
    assert (result["ok"], result["failed"]) == (8, 0)
    assert Stub.most == 4
    assert {auth for _, auth in Stub.seen} == {"Bearer sk-test-0123456789"}
    assert result["seconds"] < 8 * 0.2


@pytest.mark.parametrize(("path", "error"), [
    ("/fail", 'HTTP 500: {"message": "boom"}'),
    ("/empty", 'HTTP 200 without an answer: {"error": "nothing"}'),
])
def test_load_reports_failed_requests(tmp_path: Path, stub: str, path: str, error: str) -> None:
    result = load(tmp_path, stub + path, "--requests", "3", "--concurrency", "2")
    assert (result["ok"], result["failed"], result["errors"]) == (0, 3, [error])
    assert result["warmup_failed"] == 1


def test_load_reports_requests_the_deadline_left_unsent(tmp_path: Path, stub: str) -> None:
    result = load(tmp_path, stub + "/slow", "--requests", "5", "--deadline", "0.05", "--warmup", "0")
    assert (result["ok"], result["failed"]) == (1, 4)
    assert result["errors"] == ["not started within the 0.05 s deadline"]
    assert result["latencies"][1:] == [None] * 4


def test_load_reports_a_refused_connection(tmp_path: Path) -> None:
    result = load(tmp_path, "http://127.0.0.1:9/x", "--requests", "2", "--timeout", "5")
    assert (result["ok"], result["failed"]) == (0, 2)
    assert result["errors"][0].startswith("ConnectionRefusedError")


# --------------------------------------------------------------------------- the playbook, controller only


def bench_playbook(*extra: str) -> subprocess.CompletedProcess[str]:
    """playbooks/bench.yml on the production inventory, limited to the controller and in check
    mode: the preflight and the plan only; no host is contacted."""
    keys = json.dumps({"vault_memoryx_gateway_api_keys": [{"name": "tests", "key": "tests-key-0123456789abcdef"}],
                       "vault_memoryx_registry_password": "tests-registry-password"})
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "inventory/production/hosts.yml", "playbooks/bench.yml",
         "--limit", "localhost", "--check", "-e", keys, *extra],
        cwd=ROOT, env=ansible_env(ANSIBLE_NOCOLOR="1"), text=True, capture_output=True, timeout=300)


@pytest.mark.ansible
def test_playbook_refuses_bad_parameters_before_any_traffic() -> None:
    run = bench_playbook("-e", "bench_requests=ten", "-e", "bench_pools=llama,lama")
    assert run.returncode != 0
    assert "bench_requests must be a whole number from 1 to 1000, got 'ten'" in run.stdout
    assert "bench_pools: 'lama' is not a pool of the stack" in run.stdout
    assert "send the load" not in run.stdout


@pytest.mark.ansible
def test_playbook_plans_from_the_stack_and_sends_nothing_in_check_mode() -> None:
    run = bench_playbook("-e", "bench_concurrency=1,8")
    assert run.returncode == 0, run.stdout + run.stderr
    printed = " ".join(run.stdout.split())
    assert "13 runs, 148 requests in all, from mx-embed-01" in printed
    assert "then the gateway https://192.168.31.65:11436 at concurrency 1, 8" in printed
    assert "skipping: [localhost]" in run.stdout  # the report: nothing was sent


@pytest.mark.parametrize(("simulator", "backlog"), [("vllm_sim", 2048), ("ollama_sim", 4096)])
def test_simulators_accept_a_burst_of_connections_as_the_engines_do(simulator: str, backlog: int) -> None:
    """With socketserver's backlog of 5, a burst of 16 gateway connections to one instance lost
    SYNs (a 1 s retransmit each: the lab's qwen pool at 16 concurrent took 1.18 s instead of
    0.17 s); uvicorn (vLLM) listens with 2048, Go (Ollama) with somaxconn."""
    spec = importlib.util.spec_from_file_location(simulator, ROOT / "lab/simulators" / f"{simulator}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[simulator] = module
    spec.loader.exec_module(module)
    server = module.Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    try:
        clients = []
        for _ in range(64):  # nothing accepts them: they wait in the backlog
            client = socket.create_connection(server.server_address, timeout=0.5)
            clients.append(client)
        assert server.request_queue_size == backlog
    finally:
        for client in clients:
            client.close()
        server.server_close()
