"""The Ollama simulator (lab/simulators/ollama_sim.py), run as a subprocess on loopback."""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
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

SIM = Path(__file__).resolve().parents[2] / "lab" / "simulators" / "ollama_sim.py"
NOT_FOUND = {"error": 'model "bge-m3" not found, try pulling it first'}


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, raw = self.request(method, path, body)
        return status, json.loads(raw)

    def pull(self) -> None:
        assert self.json("POST", "/api/pull", {"model": "bge-m3", "stream": False}) == (
            200,
            {"status": "success"},
        )

    def embed(self, text: str | list[str], **extra: Any) -> dict[str, Any]:
        status, body = self.json("POST", "/api/embed", {"model": "bge-m3", "input": text, **extra})
        assert status == 200, body
        return dict(body)


@dataclass
class Lab:
    tmp: Path
    models: Path
    servers: list[Server] = field(default_factory=list)

    def env(self, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMA")}
        env.update(
            OLLAMA_HOST=f"127.0.0.1:{port}",
            OLLAMA_MODELS=str(self.models),
            OLLAMA_SIM_EMBED_MS="5",
            OLLAMA_SIM_LOAD_MS="10",
        )
        env.update(extra or {})
        return env

    def start(self, env: dict[str, str] | None = None) -> Server:
        port = free_port()
        log = open(self.tmp / f"ollama{len(self.servers)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, str(SIM), "serve"],
            env=self.env(port, env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        server = Server(proc, port)
        self.servers.append(server)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert proc.poll() is None, "simulator exited"
            try:
                if server.request("GET", "/") == (200, b"Ollama is running"):
                    return server
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail("ollama simulator never answered")

    def cli(self, server: Server, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SIM), *args],
            env=self.env(server.port),
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    the_lab = Lab(tmp_path, tmp_path / "models")
    yield the_lab
    for server in the_lab.servers:
        server.proc.terminate()
        server.proc.wait(timeout=10)


@pytest.fixture
def server(lab: Lab) -> Server:
    return lab.start()


@pytest.fixture
def pulled(server: Server) -> Server:
    server.pull()
    return server


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_root_and_version(server: Server) -> None:
    status, body = server.json("GET", "/api/version")
    assert status == 200
    assert "simulator" in body["version"]


def test_tags_before_and_after_pull(lab: Lab, server: Server) -> None:
    assert server.json("GET", "/api/tags") == (200, {"models": []})
    status, raw = server.request("POST", "/api/pull", {"model": "bge-m3"})
    assert status == 200
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert lines[0] == {"status": "pulling manifest"}
    assert lines[-1] == {"status": "success"}
    [model] = server.json("GET", "/api/tags")[1]["models"]
    assert model["name"] == "bge-m3:latest"
    assert model["details"]["family"] == "bert"
    assert model["details"]["parameter_size"] == "566.70M"
    assert model["details"]["quantization_level"] == "F16"
    assert 1.1e9 < model["size"] < 1.2e9
    manifest = lab.models / "manifests/registry.ollama.ai/library/bge-m3/latest"
    assert model["digest"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    for layer in json.loads(manifest.read_bytes())["layers"]:
        blob = lab.models / "blobs" / layer["digest"].replace(":", "-")
        assert blob.stat().st_size < 4096  # small stand-in, whatever size is declared


def test_pull_unknown_model_fails_like_ollama(server: Server) -> None:
    status, body = server.json("POST", "/api/pull", {"model": "no-such-model", "stream": False})
    assert status == 500
    assert body == {"error": "pull model manifest: file does not exist"}
    status, raw = server.request("POST", "/api/pull", {"name": "no-such-model"})
    assert json.loads(raw.decode().splitlines()[-1]) == body
    assert server.json("GET", "/api/tags")[1] == {"models": []}


def test_embed_before_pull_is_404(server: Server) -> None:
    assert server.json("POST", "/api/embed", {"model": "bge-m3", "input": "x"}) == (404, NOT_FOUND)
    assert server.json("POST", "/api/embeddings", {"model": "bge-m3", "prompt": "x"}) == (
        404,
        NOT_FOUND,
    )
    status, body = server.json("POST", "/v1/embeddings", {"model": "bge-m3", "input": "x"})
    assert status == 404
    assert body["error"]["message"] == NOT_FOUND["error"]


def test_embed_shapes_norm_and_determinism(pulled: Server) -> None:
    one = pulled.embed("the cat sat on the mat")
    assert one["model"] == "bge-m3"
    assert one["prompt_eval_count"] > 0
    assert one["total_duration"] >= one["load_duration"] > 0  # first call loads the model
    [vector] = one["embeddings"]
    assert len(vector) == 1024
    assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=1e-9)
    two = pulled.embed(["the cat sat on the mat", "quantum chromodynamics lecture"])
    assert two["load_duration"] == 0  # already loaded
    assert [len(v) for v in two["embeddings"]] == [1024, 1024]
    assert two["embeddings"][0] == vector
    assert two["embeddings"][1] != vector
    near = pulled.embed("the cat sat on a mat")["embeddings"][0]
    assert cosine(vector, near) > cosine(vector, two["embeddings"][1])


def test_legacy_and_openai_embedding_endpoints(pulled: Server) -> None:
    reference = pulled.embed("hello world")["embeddings"][0]
    status, legacy = pulled.json(
        "POST", "/api/embeddings", {"model": "bge-m3", "prompt": "hello world"}
    )
    assert status == 200
    assert legacy == {"embedding": reference}
    status, body = pulled.json(
        "POST", "/v1/embeddings", {"model": "bge-m3", "input": ["hello world", "bye"]}
    )
    assert status == 200
    assert body["object"] == "list"
    assert body["model"] == "bge-m3"
    assert [d["index"] for d in body["data"]] == [0, 1]
    assert body["data"][0] == {"object": "embedding", "embedding": reference, "index": 0}
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_embed_without_input_loads_the_model(pulled: Server) -> None:
    assert pulled.json("GET", "/api/ps") == (200, {"models": []})
    assert pulled.json("POST", "/api/embed", {"model": "bge-m3", "keep_alive": -1}) == (
        200,
        {"model": "bge-m3", "embeddings": []},
    )
    [loaded] = pulled.json("GET", "/api/ps")[1]["models"]
    assert loaded["name"] == "bge-m3:latest"
    assert loaded["expires_at"].startswith("2318-")
    pulled.embed("x", keep_alive="5m")
    expires = pulled.json("GET", "/api/ps")[1]["models"][0]["expires_at"]
    assert expires[:4] < "2300"


def test_embedding_requests_are_serialised(lab: Lab) -> None:
    latency_ms = 200
    server = lab.start({"OLLAMA_SIM_EMBED_MS": str(latency_ms), "OLLAMA_NUM_PARALLEL": "4"})
    server.pull()
    server.json("POST", "/api/embed", {"model": "bge-m3"})  # load first
    results: list[dict[str, Any]] = []
    workers = [
        threading.Thread(target=lambda i=i: results.append(server.embed(f"text {i}")))
        for i in range(3)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    elapsed = time.monotonic() - started
    assert len(results) == 3
    assert all(r["total_duration"] >= latency_ms * 1e6 for r in results)
    # A lower bound only (cannot flake): three requests in parallel would take ~1x latency,
    # one at a time they take at least 3x, whatever OLLAMA_NUM_PARALLEL says.
    assert elapsed >= 3 * latency_ms / 1000


def test_servers_sharing_a_models_dir_see_each_others_pull(lab: Lab) -> None:
    first, second = lab.start(), lab.start()
    assert second.json("GET", "/api/tags")[1] == {"models": []}
    first.pull()
    assert [m["name"] for m in second.json("GET", "/api/tags")[1]["models"]] == ["bge-m3:latest"]
    assert second.embed("shared")["embeddings"] == first.embed("shared")["embeddings"]


def test_cli_pull_and_list(lab: Lab, server: Server) -> None:
    missing = lab.cli(server, "pull", "no-such-model")
    assert missing.returncode == 1
    assert "Error: pull model manifest: file does not exist" in missing.stderr
    pulled = lab.cli(server, "pull", "bge-m3")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.splitlines()[-1] == "success"
    listed = lab.cli(server, "list")
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["NAME", "ID", "SIZE", "MODIFIED"]
    assert listed.stdout.splitlines()[1].startswith("bge-m3:latest")
    assert lab.cli(server, "frobnicate").returncode == 1


def test_ollama_python_client(pulled: Server) -> None:
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=f"http://{pulled.host}")
    response = client.embed(model="bge-m3", input=["a", "b"])
    assert len(response.embeddings) == 2
    assert len(response.embeddings[0]) == 1024
    assert [m.model for m in client.list().models] == ["bge-m3:latest"]


def test_show_describes_a_pulled_model_and_404s_others(server: Server) -> None:
    assert server.json("POST", "/api/show", {"model": "bge-m3"})[0] == 404
    server.request("POST", "/api/pull", {"model": "bge-m3", "stream": False})
    status, body = server.json("POST", "/api/show", {"model": "bge-m3"})
    assert status == 200
    assert body["details"]["family"] == "bert"
    assert body["model_info"]["bert.embedding_length"] == 1024
    assert body["capabilities"] == ["embedding"]
    assert server.json("POST", "/api/show", {}) == (400, {"error": "model is required"})
