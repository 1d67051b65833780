"""The vLLM simulator (lab/simulators/vllm_sim.py), run as a subprocess on loopback."""

from __future__ import annotations

import http.client
import importlib.util
import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.portpick import free_port

SIM = Path(__file__).resolve().parents[2] / "lab" / "simulators" / "vllm_sim.py"
SERVED = "llama3.1-8b"
BUSY = "Free memory on device"


@dataclass
class Sim:
    proc: subprocess.Popen[bytes]
    port: int
    stderr: Path

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, raw = self.request(method, path, body)
        return status, json.loads(raw)

    def error_text(self) -> str:
        return self.stderr.read_text()

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout=timeout)

    def wait_healthy(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"simulator exited {self.proc.returncode}: {self.error_text()}")
            try:
                if self.request("GET", "/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("simulator never became healthy")


@dataclass
class Lab:
    tmp: Path
    model: Path
    gpus_file: Path
    ledger: Path
    sims: list[Sim] = field(default_factory=list)

    def env(self, gpu: str | None, extra: dict[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM", "NVIDIA"))}
        env.update(
            VLLM_SIM_LOAD_SECONDS="0.2",
            VLLM_SIM_TTFT_MS="10",
            VLLM_SIM_TPOT_MS="10",
            VLLM_SIM_GPU_DIR=str(self.ledger),
            VLLM_SIM_GPUS_FILE=str(self.gpus_file),
            HF_HUB_OFFLINE="1",
        )
        if gpu is not None:
            env["NVIDIA_VISIBLE_DEVICES"] = gpu
        env.update(extra or {})
        return env

    def start(
        self,
        *args: str,
        gpu: str | None = "0",
        util: str = "0.45",
        env: dict[str, str] | None = None,
        model: str | None = None,
    ) -> Sim:
        port = free_port()
        cmd = [
            sys.executable,
            str(SIM),
            "serve",
            "--model",
            model or str(self.model),
            "--served-model-name",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "half",
            "--gpu-memory-utilization",
            util,
            "--max-model-len",
            "8192",
            "--block-size",
            "64",
            "--trust-remote-code",
            *args,
        ]
        index = len(self.sims)
        stdout = open(self.tmp / f"sim{index}.out", "wb")  # noqa: SIM115 - closed with the process
        stderr_path = self.tmp / f"sim{index}.err"
        with open(stderr_path, "wb") as stderr:
            proc = subprocess.Popen(cmd, env=self.env(gpu, env), stdout=stdout, stderr=stderr)
        stdout.close()
        sim = Sim(proc, port, stderr_path)
        self.sims.append(sim)
        return sim

    def ledger_files(self, gpu: int = 0) -> list[Path]:
        return sorted((self.ledger / f"gpu{gpu}").glob("*.json"))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    model = tmp_path / "models" / "Meta-Llama-3.1-8B-Instruct-GPTQ-INT4"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"max_position_embeddings": 131072}))
    # The stand-in driver's table, in the format lab/lab.sh writes to /etc/nvidia-sim/gpus.json.
    gpus = [{"index": i, "name": "Tesla V100-SXM2-32GB", "memory_total_mib": 32768, "compute_cap": "7.0"}
            for i in range(3)]
    gpus_file = tmp_path / "gpus.json"
    gpus_file.write_text(json.dumps({"driver_version": "535.247.01", "gpus": gpus}))
    the_lab = Lab(tmp_path, model, gpus_file, tmp_path / "ledger")
    yield the_lab
    for sim in the_lab.sims:
        if sim.proc.poll() is None:
            sim.proc.kill()
            sim.proc.wait(timeout=10)


@pytest.fixture
def sim(lab: Lab) -> Sim:
    started = lab.start()
    started.wait_healthy()
    return started


def chat_body(content: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"model": SERVED, "messages": [{"role": "user", "content": content}], **extra}


def open_stream(sim: Sim, path: str, body: dict[str, Any]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.getheader("Content-Type", "").startswith("text/event-stream")
    return resp


def read_events(resp: http.client.HTTPResponse) -> Iterator[tuple[float, str]]:
    """(arrival time, data) per SSE event; stops at end of stream or when the peer drops."""
    while True:
        try:
            line = resp.readline()
        except (http.client.IncompleteRead, OSError):
            return
        if not line:
            return
        text = line.decode().strip()
        if text.startswith("data: "):
            yield time.monotonic(), text[len("data: ") :]


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --------------------------------------------------------------------------- start-up failures


def test_unknown_flag_fails_like_argparse(lab: Lab) -> None:
    sim = lab.start("--bogus")
    assert sim.wait_exit() == 2
    assert "vllm serve: error: unrecognized arguments: --bogus" in sim.error_text()


def test_bad_choice_is_refused(lab: Lab) -> None:
    sim = lab.start("--kv-cache-dtype", "fp4")  # the choices of the flag list, not the sim's
    assert sim.wait_exit() == 2
    assert "argument --kv-cache-dtype: invalid choice: 'fp4'" in sim.error_text()


@pytest.mark.parametrize("with_dir", [False, True])
def test_missing_model_dir_fails_with_vllm_message(lab: Lab, with_dir: bool) -> None:
    path = lab.tmp / "models" / "absent"
    if with_dir:
        path.mkdir()  # a directory without config.json is no model either
    sim = lab.start(model=str(path))
    assert sim.wait_exit() == 1
    text = sim.error_text()
    assert f"ValueError: Invalid repository ID or local directory specified: '{path}'." in text
    assert not (lab.ledger / "gpu0").exists() or not lab.ledger_files()


@pytest.mark.parametrize("devices", [None, "", "void", "none", "7"])
def test_no_visible_gpu_fails_with_cuda_error(lab: Lab, devices: str | None) -> None:
    sim = lab.start(gpu=devices)
    assert sim.wait_exit() == 1
    assert sim.error_text().strip().endswith("RuntimeError: No CUDA GPUs are available")


def test_missing_gpus_file_means_no_gpu(lab: Lab) -> None:
    lab.gpus_file.unlink()
    sim = lab.start()
    assert sim.wait_exit() == 1
    assert "RuntimeError: No CUDA GPUs are available" in sim.error_text()


# --------------------------------------------------------------------------- GPU memory ledger


def test_two_instances_started_at_once_on_one_gpu_one_fails(lab: Lab) -> None:
    slow = {"VLLM_SIM_LOAD_SECONDS": "2.5"}
    first, second = lab.start(env=slow), lab.start(env=slow)
    deadline = time.monotonic() + 10
    while first.proc.poll() is None and second.proc.poll() is None:
        assert time.monotonic() < deadline, "neither instance failed"
        time.sleep(0.05)
    failed, survivor = (first, second) if first.proc.poll() is not None else (second, first)
    assert failed.wait_exit() == 1
    assert (
        "ValueError: Free memory on device (0.00/32.00 GiB) on startup is less than desired GPU "
        "memory utilization (0.45, 14.40 GiB). Decrease GPU memory utilization or reduce GPU "
        "memory used by other processes." in failed.error_text()
    )
    survivor.wait_healthy()
    assert len(lab.ledger_files()) == 1


def test_instances_started_one_after_another_share_the_gpu(lab: Lab) -> None:
    first = lab.start()
    first.wait_healthy()
    second = lab.start()
    second.wait_healthy()
    for sim in (first, second):
        status, info = sim.json("GET", "/sim/info")
        assert status == 200
        assert info["simulator"] == "vllm"
        assert info["visible_devices"] == "0"
        assert info["gpu"] == {"index": 0, "name": "Tesla V100-SXM2-32GB", "memory_mib": 32768}
        assert info["gpu_memory_reserved_gib"] == pytest.approx(14.4)
        assert info["args"]["gpu_memory_utilization"] == 0.45
    states = [json.loads(p.read_text())["state"] for p in lab.ledger_files()]
    assert states == ["ready", "ready"]
    third = lab.start()
    assert third.wait_exit() == 1
    assert "Free memory on device (3.20/32.00 GiB)" in third.error_text()
    other_gpu = lab.start(gpu="1", util="0.9")
    other_gpu.wait_healthy()


def test_stale_ledger_entry_of_killed_sim_does_not_block(lab: Lab) -> None:
    first = lab.start(util="0.9")
    first.wait_healthy()
    stale = lab.ledger_files()
    first.proc.send_signal(signal.SIGKILL)
    first.wait_exit()
    assert lab.ledger_files() == stale  # SIGKILL left its file behind
    second = lab.start(util="0.9")
    second.wait_healthy()
    assert stale[0] not in lab.ledger_files()
    assert len(lab.ledger_files()) == 1


# --------------------------------------------------------------------------- API


def test_models_lists_served_name(sim: Sim, lab: Lab) -> None:
    status, body = sim.json("GET", "/v1/models")
    assert status == 200
    assert body["object"] == "list"
    [entry] = body["data"]
    assert entry["id"] == SERVED
    assert entry["owned_by"] == "vllm"
    assert entry["root"] == str(lab.model)
    assert entry["max_model_len"] == 8192
    assert entry["parent"] is None


def test_chat_completion_non_stream(sim: Sim) -> None:
    status, body = sim.json("POST", "/v1/chat/completions", chat_body(max_tokens=3))
    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == SERVED
    [choice] = body["choices"]
    assert choice["message"]["role"] == "assistant"
    assert len(choice["message"]["content"].split()) == 3
    assert choice["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + 3
    again = sim.json("POST", "/v1/chat/completions", chat_body(max_tokens=3))[1]
    assert again["choices"][0]["message"]["content"] == choice["message"]["content"]


def test_chat_completion_stops_before_a_large_max_tokens(sim: Sim) -> None:
    body = sim.json("POST", "/v1/chat/completions", chat_body(max_tokens=100))[1]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["completion_tokens"] < 100


def test_chat_stream_sends_one_chunk_per_token_as_produced(lab: Lab) -> None:
    tpot_ms = 80
    sim = lab.start(env={"VLLM_SIM_TPOT_MS": str(tpot_ms)})
    sim.wait_healthy()
    resp = open_stream(sim, "/v1/chat/completions", chat_body(max_tokens=6, stream=True))
    events = list(read_events(resp))
    assert events[-1][1] == "[DONE]"
    chunks = [json.loads(data) for _, data in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    tokens = [c["choices"][0]["delta"]["content"] for c in chunks[1:]]
    assert len(tokens) == 6
    assert [c["choices"][0]["finish_reason"] for c in chunks[1:]] == [None] * 5 + ["length"]
    arrivals = [t for t, _ in events[1:-1]]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert statistics.median(gaps) >= 0.5 * tpot_ms / 1000
    assert arrivals[-1] - arrivals[0] >= 0.9 * 5 * tpot_ms / 1000
    whole = sim.json("POST", "/v1/chat/completions", chat_body(max_tokens=6))[1]
    assert "".join(tokens) == whole["choices"][0]["message"]["content"]


def test_completions_non_stream_and_stream(sim: Sim) -> None:
    body = {"model": SERVED, "prompt": "Once upon a time", "max_tokens": 4}
    status, whole = sim.json("POST", "/v1/completions", body)
    assert status == 200
    assert whole["object"] == "text_completion"
    assert whole["choices"][0]["finish_reason"] == "length"
    assert len(whole["choices"][0]["text"].split()) == 4
    resp = open_stream(
        sim, "/v1/completions", {**body, "stream": True, "stream_options": {"include_usage": True}}
    )
    events = [data for _, data in read_events(resp)]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == whole["choices"][0]["text"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_wrong_model_is_404(sim: Sim) -> None:
    status, body = sim.json("POST", "/v1/chat/completions", {**chat_body(), "model": "gpt-4"})
    assert status == 404
    assert body == {
        "error": {
            "message": "The model `gpt-4` does not exist.",
            "type": "NotFoundError",
            "param": "model",
            "code": 404,
        }
    }


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/chat/completions", b"{not json"),
        ("/v1/chat/completions", json.dumps({"model": SERVED}).encode()),
        ("/v1/completions", json.dumps({"model": SERVED}).encode()),
        (
            "/v1/completions",
            json.dumps({"model": SERVED, "prompt": "x", "max_tokens": 9000}).encode(),
        ),
    ],
)
def test_bad_requests_are_400(sim: Sim, path: str, raw: bytes) -> None:
    status, body = sim.request("POST", path, raw)
    assert status == 400
    error = json.loads(body)["error"]
    assert error["type"] == "BadRequestError"
    assert error["code"] == 400
    assert sim.request("GET", "/health")[0] == 200  # keep-alive/server still fine


def test_keep_alive_connection_serves_several_requests(sim: Sim) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        for _ in range(3):
            conn.request(
                "POST",
                "/v1/completions",
                body=json.dumps({"model": SERVED, "prompt": "a", "max_tokens": 2}),
            )
            resp = conn.getresponse()
            assert resp.status == 200
            json.loads(resp.read())
            assert not resp.will_close
    finally:
        conn.close()


def test_api_key_is_required_on_v1(lab: Lab) -> None:
    sim = lab.start("--api-key", "s3cret")
    sim.wait_healthy()
    assert sim.request("GET", "/v1/models")[0] == 401
    assert sim.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert sim.request("GET", "/v1/models", headers={"Authorization": "Bearer s3cret"})[0] == 200


def test_dead_engine_fails_health(sim: Sim) -> None:
    assert sim.request("POST", "/sim/engine-dead", b"")[0] == 200
    assert sim.request("GET", "/health")[0] == 503


def test_openai_client_reads_the_stream(sim: Sim) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{sim.port}/v1", api_key="none")
    stream = client.chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text.split()) == 4


# --------------------------------------------------------------------------- scheduling, metrics


def test_max_num_seqs_queues_requests_visible_in_metrics(lab: Lab) -> None:
    sim = lab.start("--max-num-seqs", "1", env={"VLLM_SIM_TPOT_MS": "40"})
    sim.wait_healthy()
    body = {"model": SERVED, "prompt": "queue me", "max_tokens": 8}
    results: list[int] = []
    workers = [
        threading.Thread(
            target=lambda: results.append(sim.request("POST", "/v1/completions", body)[0])
        )
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    seen: tuple[float, float] = (0.0, 0.0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        text = sim.request("GET", "/metrics")[1].decode()
        seen = (
            metric(text, "vllm:num_requests_running"),
            metric(text, "vllm:num_requests_waiting"),
        )
        if seen[1] > 0:
            break
        time.sleep(0.02)
    for worker in workers:
        worker.join(timeout=10)
    assert seen[0] == 1.0, seen
    assert seen[1] >= 1.0, seen
    assert results == [200, 200, 200]
    text = sim.request("GET", "/metrics")[1].decode()
    assert "# TYPE vllm:request_success_total counter" in text
    assert metric(text, "vllm:request_success_total") == 3
    assert metric(text, "vllm:generation_tokens_total") == 24
    assert metric(text, "vllm:num_requests_waiting") == 0
    assert f'vllm:num_requests_running{{model_name="{SERVED}"}} 0.0' in text


def concurrent_seconds(sim: Sim, count: int) -> float:
    """Wall time of `count` identical completions sent at once."""
    body = {"model": SERVED, "prompt": "batch me", "max_tokens": 10}
    workers = [threading.Thread(target=lambda: sim.request("POST", "/v1/completions", body))
               for _ in range(count)]
    start = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    return time.monotonic() - start


@pytest.mark.parametrize(("cost", "low", "high"), [("0", 0.0, 1.8), ("1.0", 2.5, 99.0)])
def test_a_batch_slows_every_decode_step_by_its_batch_cost(lab: Lab, cost: str, low: float,
                                                          high: float) -> None:
    """4 sequences in one batch: no slower than one with no batch cost; with a cost of 1.0 per
    other sequence each step takes 4 TPOT, so the batch takes about 3.8x one request."""
    sim = lab.start(env={"VLLM_SIM_TPOT_MS": "20", "VLLM_SIM_BATCH_COST": cost})
    sim.wait_healthy()
    alone = concurrent_seconds(sim, 1)
    ratio = concurrent_seconds(sim, 4) / alone
    assert low <= ratio <= high, (cost, alone, ratio)


# --------------------------------------------------------------------------- SIGTERM


def test_sigterm_with_shutdown_timeout_lets_stream_finish(lab: Lab) -> None:
    sim = lab.start("--shutdown-timeout", "10", env={"VLLM_SIM_TPOT_MS": "60"})
    sim.wait_healthy()
    resp = open_stream(
        sim, "/v1/completions", {"model": SERVED, "prompt": "p", "max_tokens": 10, "stream": True}
    )
    events = read_events(resp)
    first = next(events)[1]
    sim.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while sim.request("GET", "/health")[0] != 503:
        assert time.monotonic() < deadline, "health never turned 503 while draining"
        time.sleep(0.02)
    status, body = sim.request(
        "POST", "/v1/completions", json.dumps({"model": SERVED, "prompt": "late"}).encode()
    )
    assert status == 503
    assert json.loads(body)["error"]["message"] == "The server is shutting down."
    rest = [data for _, data in events]
    assert rest[-1] == "[DONE]"
    assert len([first, *rest[:-1]]) == 10
    assert sim.wait_exit() == 0
    assert lab.ledger_files() == []


def test_sigterm_without_shutdown_timeout_aborts_stream(lab: Lab) -> None:
    sim = lab.start(env={"VLLM_SIM_TPOT_MS": "200"})
    sim.wait_healthy()
    resp = open_stream(
        sim, "/v1/completions", {"model": SERVED, "prompt": "p", "max_tokens": 20, "stream": True}
    )
    events = read_events(resp)
    next(events)
    started = time.monotonic()
    sim.proc.send_signal(signal.SIGTERM)
    rest = [data for _, data in events]
    assert "[DONE]" not in rest
    assert len(rest) < 19
    assert sim.wait_exit() == 0
    assert time.monotonic() - started < 3.8  # well before the 20 tokens x 200 ms would end
    assert lab.ledger_files() == []


def test_sigterm_during_load_releases_ledger(lab: Lab) -> None:
    sim = lab.start(env={"VLLM_SIM_LOAD_SECONDS": "30"})
    deadline = time.monotonic() + 5
    while not lab.ledger_files():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert json.loads(lab.ledger_files()[0].read_text())["state"] == "loading"
    with pytest.raises(ConnectionRefusedError):
        sim.request("GET", "/health")  # not listening while loading
    sim.proc.send_signal(signal.SIGTERM)
    assert sim.wait_exit() == 0
    assert lab.ledger_files() == []



def test_corrupt_config_json_fails_like_transformers(lab: Lab) -> None:
    path = lab.tmp / "models" / "broken"
    path.mkdir(parents=True)
    (path / "config.json").write_text("{not json")
    sim = lab.start(model=str(path))
    assert sim.wait_exit() == 1
    expected = f"OSError: It looks like the config file at '{path / 'config.json'}' is not a valid JSON file."
    assert expected in sim.error_text()


# --------------------------------------------------------------------------- issue 8: real flags, kernels, smoke

FLAGS = json.loads((SIM.parent / "vllm-flags" / "vllm-flags-0.19.1.json").read_text())
SMOKE = json.loads((SIM.parents[2] / "memoryx_deploy" / "data" / "smoke.json").read_text())["vllm"]
STANDIN_TORCH = SIM.parent / "standin_torch"
NO_KERNEL = "CUDA error: no kernel image is available for execution on the device"


def load_sim() -> Any:
    spec = importlib.util.spec_from_file_location("vllm_sim_flags", SIM)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    sys.dont_write_bytecode, before = True, sys.dont_write_bytecode  # keep the build context clean
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = before
    return module


def test_every_flag_of_the_generated_list_is_accepted() -> None:
    module = load_sim()
    parser = module.build_parser(FLAGS)
    accepted = 0
    for action in FLAGS["actions"]:
        for option in action["options"]:
            if action["kind"] != "value":
                argv = [option]
            else:
                typed = module.MODELLED.get(action["dest"], (str, None))[0]
                argv = [option, str((action["choices"] or ["1" if typed in (int, float) else "x"])[0])]
            parser.parse_args(argv)  # SystemExit (a test failure) if refused
            accepted += 1
    assert accepted == sum(len(a["options"]) for a in FLAGS["actions"]) > 250


def test_a_flag_vllm_does_not_have_is_refused(lab: Lab) -> None:
    sim = lab.start("--swap-space", "4")  # a flag of older vLLM, not of 0.19.1
    assert sim.wait_exit() == 2
    assert "vllm serve: error: unrecognized arguments: --swap-space" in sim.error_text()


def test_underscore_spelling_is_accepted_as_vllm_does(lab: Lab) -> None:
    sim = lab.start("--max_num_seqs", "3", "--no-enable-prefix-caching")
    sim.wait_healthy()
    assert sim.json("GET", "/v1/models")[0] == 200


def test_a_gpu_the_image_has_no_kernel_for_fails_as_torch_does(lab: Lab) -> None:
    sim = lab.start(env={"VLLM_SIM_CUDA_ARCHS": "7.5 8.0 8.6 8.9 9.0 10.0 11.0 12.0+PTX"})
    assert sim.wait_exit() == 1
    text = sim.error_text()
    assert "Tesla V100-SXM2-32GB with CUDA capability sm_70 is not compatible" in text
    assert text.rstrip().endswith(NO_KERNEL)
    assert lab.ledger_files() == []


def test_a_gpu_in_the_image_arch_list_starts(lab: Lab) -> None:
    lab.start(env={"VLLM_SIM_CUDA_ARCHS": "7.0 7.5 8.0 8.9 9.0 10.0 12.0"}).wait_healthy()


def run_smoke(lab: Lab, archs: str, gpu: str = "1") -> subprocess.CompletedProcess[str]:
    """The smoke command of memoryx_deploy/data/smoke.json, as the vLLM simulator image runs it
    (python3 with the stand-in torch on its path)."""
    env = {**lab.env(gpu, None), "PYTHONPATH": str(STANDIN_TORCH), "VLLM_SIM_CUDA_ARCHS": archs,
           "PYTHONDONTWRITEBYTECODE": "1"}  # no __pycache__ in the image's build context
    return subprocess.run([sys.executable, *SMOKE["args"]], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_the_smoke_command_passes_on_a_gpu_the_image_supports(lab: Lab) -> None:
    result = run_smoke(lab, "7.0 7.5 8.0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(SMOKE["expect"] + ": Tesla V100-SXM2-32GB compute 7.0")
    assert "kernels for sm_70 sm_75 sm_80" in result.stdout


def test_the_smoke_command_fails_with_torchs_words_elsewhere(lab: Lab) -> None:
    result = run_smoke(lab, "7.5 8.0 12.0+PTX")
    assert result.returncode == 1
    assert SMOKE["expect"] not in result.stdout
    assert "RuntimeError: " + NO_KERNEL in result.stderr
    none = run_smoke(lab, "7.0", gpu="void")
    assert none.returncode == 1 and "RuntimeError: No CUDA GPUs are available" in none.stderr
