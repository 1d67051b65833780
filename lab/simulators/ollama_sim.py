#!/usr/bin/env python3
"""OLLAMA SIMULATOR for the memoryx-deploy lab. This is NOT Ollama.

It stands in for the ``ollama/ollama`` image (entrypoint ``/bin/ollama``, command ``serve``);
the lab image installs this file as ``/bin/ollama``. Verbs:

  serve          run the HTTP server on OLLAMA_HOST (default 0.0.0.0:11434)
  list           GET /api/tags from the server at OLLAMA_HOST and print a table
  pull NAME      POST /api/pull to the server at OLLAMA_HOST, printing progress
  -v|--version   print the (simulator) version

Real environment honoured:
  OLLAMA_HOST               [scheme://]host[:port] (default 0.0.0.0:11434; clients use 127.0.0.1)
  OLLAMA_MODELS             models dir (default ~/.ollama/models): manifests/<registry>/<ns>/
                            <name>/<tag> plus blobs/sha256-<hex>, read on every request, so
                            servers sharing the dir see each other's pulls
  OLLAMA_NUM_PARALLEL       parsed and reported; embedding requests are serialised anyway
  OLLAMA_KEEP_ALIVE         default keep-alive (e.g. 5m, 1h, 300, -1 = forever, 0 = unload)
  OLLAMA_MAX_LOADED_MODELS  at most this many models loaded (least recently used evicted)
  NVIDIA_VISIBLE_DEVICES    reported in the log and in GET /sim/info

Simulator-only environment:
  OLLAMA_SIM_EMBED_MS       latency of one embedding request, ms (default 20)
  OLLAMA_SIM_LOAD_MS        latency of loading a model that is not loaded, ms (default 200)

The registry is replaced by a built-in catalogue (``bge-m3`` only). A pull writes a real
manifest and config blob; the model layer DECLARES the real size (~1.16 GB) but its blob is a
few bytes. Embeddings are deterministic (a sum of sha256-seeded word vectors, so texts that
share words are similar), 1024-dimensional and L2-normalised.

Simulator-only HTTP endpoint: GET /sim/info.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import re
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BANNER = "OLLAMA SIMULATOR (memoryx-deploy lab)"
VERSION = "0.0.0-simulator"
DIMENSIONS = 1024
DEFAULT_REGISTRY = "registry.ollama.ai"
FOREVER = dt.datetime(2318, 1, 1, tzinfo=dt.UTC)
MAX_BODY = 64 * 1024 * 1024

# The registry stand-in: name -> (config blob fields, declared model layer size).
CATALOGUE: dict[str, dict[str, Any]] = {
    "bge-m3": {
        "config": {
            "model_format": "gguf",
            "model_family": "bert",
            "model_families": ["bert"],
            "model_type": "566.70M",
            "file_type": "F16",
            "architecture": "amd64",
            "os": "linux",
        },
        "model_size": 1157672605,
        "license": "MIT License (bge-m3), placeholder text written by the OLLAMA SIMULATOR\n",
        "params": {"num_ctx": 8192},
    }
}


def log(message: str, level: str = "INFO") -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    print(f'time={stamp} level={level} source=ollama-simulator msg="{message}"', flush=True)


# --------------------------------------------------------------------------- settings


def parse_duration(raw: str | int | float | None, default: float | None) -> float | None:
    """Seconds; None means forever (negative). Accepts 300, "300", "5m", "1h30m", "-1"."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return default
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = float(raw)
    else:
        text = str(raw).strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = re.fullmatch(r"(-?)((?:\d+(?:\.\d+)?(?:ms|h|m|s))+)", text)
            if not parts:
                raise ValueError(f"invalid duration {text!r}") from None
            units = {"ms": 0.001, "h": 3600.0, "m": 60.0, "s": 1.0}
            seconds = sum(
                float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", parts[2])
            )
            seconds = -seconds if parts[1] else seconds
    return None if seconds < 0 else seconds


def parse_host(raw: str, default_host: str) -> tuple[str, int]:
    text = raw.strip() or f"{default_host}:11434"
    text = re.sub(r"^[a-z]+://", "", text).rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or "]" in port:
        host, port = text, "11434"
    host = host.strip("[]") or default_host
    return host, int(port or 11434)


def env_ms(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return (float(raw) if raw else default) / 1000.0


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        log(f"invalid {name}={raw!r}, using {default}", "WARN")
        return default


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    models_dir: Path
    num_parallel: int
    keep_alive: float | None
    max_loaded: int
    embed_latency: float
    load_latency: float

    @classmethod
    def from_env(cls) -> Settings:
        host, port = parse_host(os.environ.get("OLLAMA_HOST", ""), "0.0.0.0")
        try:
            keep_alive = parse_duration(os.environ.get("OLLAMA_KEEP_ALIVE"), 300.0)
        except ValueError:
            log("invalid OLLAMA_KEEP_ALIVE, using 5m", "WARN")
            keep_alive = 300.0
        default_dir = Path.home() / ".ollama" / "models"
        return cls(
            host=host,
            port=port,
            models_dir=Path(os.environ.get("OLLAMA_MODELS") or default_dir),
            num_parallel=env_int("OLLAMA_NUM_PARALLEL", 1),
            keep_alive=keep_alive,
            max_loaded=env_int("OLLAMA_MAX_LOADED_MODELS", 3),
            embed_latency=env_ms("OLLAMA_SIM_EMBED_MS", 20.0),
            load_latency=env_ms("OLLAMA_SIM_LOAD_MS", 200.0),
        )


# --------------------------------------------------------------------------- model store


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ModelRef:
    registry: str
    namespace: str
    name: str
    tag: str

    @classmethod
    def parse(cls, raw: str) -> ModelRef:
        text = raw.strip()
        if not text or not re.fullmatch(r"[A-Za-z0-9._/:-]+", text):
            raise ApiError(400, f"invalid model name {raw!r}")
        base, _, tag = text.rpartition(":") if ":" in text.split("/")[-1] else (text, "", "latest")
        parts = base.split("/")
        registry = parts[-3] if len(parts) >= 3 else DEFAULT_REGISTRY
        namespace = parts[-2] if len(parts) >= 2 else "library"
        return cls(registry, namespace, parts[-1], tag or "latest")

    @property
    def display(self) -> str:
        if self.registry == DEFAULT_REGISTRY and self.namespace == "library":
            return f"{self.name}:{self.tag}"
        return f"{self.registry}/{self.namespace}/{self.name}:{self.tag}"


class Store:
    """The models directory, read from disk on every call."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def manifest_path(self, ref: ModelRef) -> Path:
        return self.root / "manifests" / ref.registry / ref.namespace / ref.name / ref.tag

    def blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / digest.replace(":", "-")

    def manifest(self, ref: ModelRef) -> dict[str, Any] | None:
        try:
            data = json.loads(self.manifest_path(ref).read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def refs(self) -> list[ModelRef]:
        base = self.root / "manifests"
        found = []
        for path in sorted(base.glob("*/*/*/*")):
            if path.is_file() and not path.name.startswith("."):
                rel = path.relative_to(base).parts
                found.append(ModelRef(*rel))
        return found

    def describe(self, ref: ModelRef) -> dict[str, Any] | None:
        path = self.manifest_path(ref)
        manifest = self.manifest(ref)
        if manifest is None:
            return None
        config: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            config = json.loads(self.blob_path(manifest["config"]["digest"]).read_bytes())
        layers = manifest.get("layers", [])
        size = sum(int(layer.get("size", 0)) for layer in layers)
        modified = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
        return {
            "name": ref.display,
            "model": ref.display,
            "modified_at": modified.isoformat(),
            "size": size,
            "digest": hashlib.sha256(path.read_bytes()).hexdigest(),
            "details": {
                "parent_model": "",
                "format": config.get("model_format", "gguf"),
                "family": config.get("model_family", ""),
                "families": config.get("model_families"),
                "parameter_size": config.get("model_type", ""),
                "quantization_level": config.get("file_type", ""),
            },
        }

    def write_blob(self, data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            atomic_write(path, data)
        return {"digest": digest, "size": len(data)}

    def pull(self, ref: ModelRef, progress: Callable[[dict[str, Any]], None]) -> None:
        entry = CATALOGUE.get(ref.name)
        progress({"status": "pulling manifest"})
        if entry is None or ref.tag != "latest" or ref.registry != DEFAULT_REGISTRY:
            raise ApiError(500, "pull model manifest: file does not exist")
        placeholder = f"OLLAMA SIMULATOR placeholder for {ref.display}; not a model.\n"
        model = self.write_blob(placeholder.encode())
        model["size"] = entry["model_size"]  # declared size of the real layer
        license_layer = self.write_blob(entry["license"].encode())
        params = self.write_blob(json.dumps(entry["params"]).encode())
        layers = [
            {"mediaType": "application/vnd.ollama.image.model", **model},
            {"mediaType": "application/vnd.ollama.image.license", **license_layer},
            {"mediaType": "application/vnd.ollama.image.params", **params},
        ]
        for layer in layers:
            progress(
                {
                    "status": f"pulling {layer['digest'][7:19]}",
                    "digest": layer["digest"],
                    "total": layer["size"],
                    "completed": layer["size"],
                }
            )
        config = dict(
            entry["config"],
            rootfs={"type": "layers", "diff_ids": [layer["digest"] for layer in layers]},
        )
        config_blob = self.write_blob(json.dumps(config).encode())
        progress({"status": "verifying sha256 digest"})
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                **config_blob,
            },
            "layers": layers,
        }
        progress({"status": "writing manifest"})
        path = self.manifest_path(ref)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps(manifest).encode())
        progress({"status": "success"})


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- embeddings


@lru_cache(maxsize=65536)
def word_vector(word: str) -> tuple[float, ...]:
    seed = hashlib.sha256(word.encode("utf-8")).digest()
    raw = b"".join(hashlib.sha256(seed + i.to_bytes(2, "big")).digest() for i in range(128))
    return tuple(v / 2147483648.0 - 1.0 for v in struct.unpack(">1024I", raw))


def embed_text(text: str) -> list[float]:
    """Deterministic, L2-normalised; texts sharing words get similar vectors."""
    words = re.findall(r"\w+", text.lower()) or [text]
    total = [0.0] * DIMENSIONS
    for word in words:
        for i, value in enumerate(word_vector(word)):
            total[i] += value
    norm = math.sqrt(sum(v * v for v in total)) or 1.0
    return [v / norm for v in total]


def count_tokens(texts: list[str]) -> int:
    return sum(len(re.findall(r"\w+|[^\w\s]", t)) + 2 for t in texts)


def expiry(keep_alive: float | None) -> dt.datetime:
    if keep_alive is None:
        return FOREVER
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=keep_alive)


@dataclass
class Runner:
    """Loaded models and the one-request-at-a-time embedding lock."""

    settings: Settings
    store: Store
    lock: threading.Lock = field(default_factory=threading.Lock)
    loaded: dict[str, dt.datetime] = field(default_factory=dict)  # display name -> expires_at
    state: threading.Lock = field(default_factory=threading.Lock)

    def prune(self) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.state:
            for name in [n for n, t in self.loaded.items() if t <= now]:
                del self.loaded[name]

    def embed(
        self, raw_name: Any, texts: list[str], keep_alive: Any
    ) -> tuple[str, list[list[float]], int, int]:
        """Returns (display name, vectors, load ns, tokens); waits for the embedding lock."""
        if not isinstance(raw_name, str) or not raw_name:
            raise ApiError(400, "model is required")
        ref = ModelRef.parse(raw_name)
        if self.store.manifest(ref) is None:
            raise ApiError(404, f'model "{raw_name}" not found, try pulling it first')
        try:
            keep = parse_duration(keep_alive, self.settings.keep_alive)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        with self.lock:
            self.prune()
            load_ns = 0
            if ref.display not in self.loaded:
                started = time.monotonic_ns()
                time.sleep(self.settings.load_latency)
                load_ns = time.monotonic_ns() - started
            self.make_room(ref.display)
            vectors = [embed_text(t) for t in texts]
            if texts:
                time.sleep(self.settings.embed_latency)
            with self.state:
                self.loaded[ref.display] = expiry(keep)
        return ref.display, vectors, load_ns, count_tokens(texts)

    def make_room(self, name: str) -> None:
        with self.state:
            while name not in self.loaded and len(self.loaded) >= max(self.settings.max_loaded, 1):
                victim = min(self.loaded, key=lambda n: self.loaded[n])
                log(f"unloading {victim} (OLLAMA_MAX_LOADED_MODELS={self.settings.max_loaded})")
                del self.loaded[victim]

    def ps(self) -> list[dict[str, Any]]:
        self.prune()
        with self.state:
            items = list(self.loaded.items())
        models = []
        for name, expires in items:
            info = self.store.describe(ModelRef.parse(name))
            if info is None:
                continue
            info.pop("modified_at", None)
            info.update(expires_at=expires.isoformat(), size_vram=info["size"])
            models.append(info)
        return models


# --------------------------------------------------------------------------- HTTP


def as_texts(value: Any, field_name: str) -> list[str]:
    if value is None or value == "" or value == []:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ApiError(400, f"invalid {field_name} type")


class Handler(BaseHTTPRequestHandler):
    server_version = "ollama-simulator"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn / Go servers do: no 40 ms delayed-ACK stalls
    runner: Runner

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log(f"[GIN] {self.client_address[0]} | {format % args}")

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any) -> None:
        self.send_body(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

    def read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "request body too large")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise ApiError(400, "invalid JSON in request body") from None
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        store = self.runner.store
        if path == "/":
            self.send_body(200, b"Ollama is running", "text/plain; charset=utf-8")
        elif path == "/api/version":
            self.send_json(200, {"version": VERSION})
        elif path == "/api/tags":
            models = [store.describe(ref) for ref in store.refs()]
            self.send_json(200, {"models": [m for m in models if m is not None]})
        elif path == "/api/ps":
            self.send_json(200, {"models": self.runner.ps()})
        elif path == "/v1/models":
            data = [
                {
                    "id": r.display,
                    "object": "model",
                    "created": int(time.time()),
                    "owned_by": r.namespace,
                }
                for r in store.refs()
            ]
            self.send_json(200, {"object": "list", "data": data})
        elif path == "/sim/info":
            self.send_json(200, self.sim_info())
        else:
            self.send_body(404, b"404 page not found", "text/plain")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        routes: dict[str, Callable[[dict[str, Any]], None]] = {
            "/api/pull": self.pull,
            "/api/embed": self.embed,
            "/api/embeddings": self.embeddings,
            "/api/show": self.show,
            "/v1/embeddings": self.openai_embeddings,
        }
        try:
            body = self.read_json()
            route = routes.get(path)
            if route is None:
                self.send_body(404, b"404 page not found", "text/plain")
                return
            route(body)
        except ApiError as err:
            if path.startswith("/v1/"):
                kind = "not_found_error" if err.status == 404 else "invalid_request_error"
                self.send_json(
                    err.status,
                    {"error": {"message": err.message, "type": kind, "param": None, "code": None}},
                )
            else:
                self.send_json(err.status, {"error": err.message})

    def sim_info(self) -> dict[str, Any]:
        s = self.runner.settings
        return {
            "simulator": "ollama",
            "banner": BANNER,
            "visible_devices": os.environ.get("NVIDIA_VISIBLE_DEVICES", ""),
            "models_dir": str(s.models_dir),
            "num_parallel": s.num_parallel,
            "keep_alive_seconds": s.keep_alive,
            "max_loaded_models": s.max_loaded,
            "embed_ms": s.embed_latency * 1000,
            "load_ms": s.load_latency * 1000,
        }

    # ---- endpoints

    def pull(self, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required")
        ref = ModelRef.parse(name)
        if body.get("stream") is False:
            self.runner.store.pull(ref, lambda _line: None)
            self.send_json(200, {"status": "success"})
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def line(obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        try:
            self.runner.store.pull(ref, line)
        except ApiError as err:
            line({"error": err.message})
        self.wfile.write(b"0\r\n\r\n")

    def embed(self, body: dict[str, Any]) -> None:
        started = time.monotonic_ns()
        texts = as_texts(body.get("input"), "input")
        _, vectors, load_ns, tokens = self.runner.embed(
            body.get("model"), texts, body.get("keep_alive")
        )
        if not texts:
            self.send_json(200, {"model": body.get("model"), "embeddings": []})
            return
        self.send_json(
            200,
            {
                "model": body.get("model"),
                "embeddings": vectors,
                "total_duration": time.monotonic_ns() - started,
                "load_duration": load_ns,
                "prompt_eval_count": tokens,
            },
        )

    def embeddings(self, body: dict[str, Any]) -> None:
        prompt = body.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise ApiError(400, "invalid prompt type")
        texts = [prompt] if prompt else []
        _, vectors, _, _ = self.runner.embed(body.get("model"), texts, body.get("keep_alive"))
        self.send_json(200, {"embedding": vectors[0] if vectors else []})

    def show(self, body: dict[str, Any]) -> None:
        """POST /api/show: a pulled model's details (404 as Ollama answers for others)."""
        name = body.get("model") or body.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "model is required")
        described = self.runner.store.describe(ModelRef.parse(name))
        if described is None:
            raise ApiError(404, f"model '{name}' not found")
        self.send_json(
            200,
            {
                "modelfile": f"FROM {described['name']}\n",
                "parameters": "",
                "template": "",
                "details": described["details"],
                "model_info": {"general.architecture": "bert", "bert.embedding_length": DIMENSIONS},
                "capabilities": ["embedding"],
                "modified_at": described["modified_at"],
            },
        )

    def openai_embeddings(self, body: dict[str, Any]) -> None:
        texts = as_texts(body.get("input"), "input")
        if not texts:
            raise ApiError(400, "invalid input")
        _, vectors, _, tokens = self.runner.embed(body.get("model"), texts, body.get("keep_alive"))
        self.send_json(
            200,
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "embedding": v, "index": i}
                    for i, v in enumerate(vectors)
                ],
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # Ollama's Go server listens with the system's backlog (somaxconn, 4096); socketserver's
    # default of 5 drops the SYNs of a burst of new connections (a 1 s retransmit each).
    request_queue_size = 4096

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- GPU discovery (issue 8)


def discovery_lines(visible: str, table: Path, archs: list[str]) -> list[str]:
    """Ollama's GPU discovery log: one "inference compute" line per visible GPU whose compute
    capability the image's CUDA library is built for (its OLLAMA_SIM_CUDA_ARCHS; unset: any),
    read from the stand-in driver's table; none left -> the CPU line, as Ollama falls back."""
    try:
        gpus = json.loads(table.read_text())["gpus"]
    except (OSError, ValueError, KeyError, TypeError):
        gpus = []
    wanted = [] if visible.strip().lower() in ("", "void", "none") else visible.split(",")
    chosen = [g for g in gpus if "all" in wanted or str(g["index"]) in wanted or g.get("uuid") in wanted]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lines = []
    for number, gpu in enumerate(chosen):
        cap = str(gpu.get("compute_cap", ""))
        if archs and not any(a.partition(".")[0] == cap.partition(".")[0]
                             and a.partition(".")[2] <= cap.partition(".")[2] for a in archs):
            lines.append(f'time={stamp} level=INFO source=ollama-simulator msg="skipping CUDA device: '
                         f'compute capability not in compiled architectures" device="{gpu["name"]}" '
                         f'cc={cap.replace(".", "")}0 archs="[{" ".join(a.replace(".", "") + "0" for a in archs)}]"')
            continue
        lines.append(f'time={stamp} level=INFO source=ollama-simulator msg="inference compute" '
                     f'id={gpu.get("uuid", number)} library=CUDA compute={cap} name=CUDA{number} '
                     f'description="{gpu["name"]}" libdirs=ollama,cuda_v12 '
                     f'total="{int(gpu.get("memory_total_mib", 0)) / 1024:.1f} GiB"')
    if not any('msg="inference compute"' in line for line in lines):
        lines.append(f'time={stamp} level=INFO source=ollama-simulator msg="inference compute" '
                     'id=cpu library=cpu compute="" name=cpu description=cpu libdirs=ollama')
    return lines


def serve() -> int:
    settings = Settings.from_env()
    log(f"{BANNER}: this is a simulator, not Ollama (version {VERSION})")
    devices = os.environ.get("NVIDIA_VISIBLE_DEVICES", "")
    log(f"GPUs (NVIDIA_VISIBLE_DEVICES): {devices or 'none; no compatible GPUs were discovered'}")
    table = Path(os.environ.get("OLLAMA_SIM_GPUS_FILE", "/etc/nvidia-sim/gpus.json"))
    archs = os.environ.get("OLLAMA_SIM_CUDA_ARCHS", "").split()
    print("\n".join(discovery_lines(devices, table, archs)), flush=True)
    log(
        f"server config OLLAMA_HOST={settings.host}:{settings.port} OLLAMA_MODELS="
        f"{settings.models_dir} OLLAMA_NUM_PARALLEL={settings.num_parallel} OLLAMA_KEEP_ALIVE="
        f"{'-1' if settings.keep_alive is None else settings.keep_alive} "
        f"OLLAMA_MAX_LOADED_MODELS={settings.max_loaded}"
    )
    settings.models_dir.mkdir(parents=True, exist_ok=True)
    runner = Runner(settings, Store(settings.models_dir))

    class BoundHandler(Handler):
        pass

    BoundHandler.runner = runner
    try:
        server = Server((settings.host, settings.port), BoundHandler)
    except OSError as exc:
        print(
            f"Error: listen tcp {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    log(f"Listening on {settings.host}:{settings.port} (version {VERSION})")
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    log("simulator stopped")
    return 0


# --------------------------------------------------------------------------- CLI client


def client_request(method: str, path: str, body: Any = None) -> http.client.HTTPResponse:
    host, port = parse_host(os.environ.get("OLLAMA_HOST", ""), "127.0.0.1")
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    conn = http.client.HTTPConnection(host, port, timeout=600)
    payload = None if body is None else json.dumps(body).encode()
    conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
    return conn.getresponse()


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def cmd_list() -> int:
    resp = client_request("GET", "/api/tags")
    models = json.loads(resp.read()).get("models", [])
    rows = [("NAME", "ID", "SIZE", "MODIFIED")]
    rows += [
        (m["name"], m["digest"][:12], human_size(int(m["size"])), m["modified_at"]) for m in models
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("    ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return 0


def cmd_pull(name: str) -> int:
    resp = client_request("POST", "/api/pull", {"model": name, "stream": True})
    for raw in resp:
        if not raw.strip():
            continue
        line = json.loads(raw)
        if "error" in line:
            print(f"Error: {line['error']}", file=sys.stderr)
            return 1
        print(line.get("status", ""), flush=True)
    return 0 if resp.status == 200 else 1


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    verb = args[0] if args else ""
    try:
        if verb == "serve" and len(args) == 1:
            return serve()
        if verb in ("list", "ls") and len(args) == 1:
            return cmd_list()
        if verb == "pull" and len(args) == 2:
            return cmd_pull(args[1])
        if verb in ("-v", "--version") and len(args) == 1:
            print(f"ollama version is {VERSION}")
            return 0
    except OSError as exc:
        print(f"Error: could not connect to ollama server ({exc})", file=sys.stderr)
        return 1
    print(
        f"{BANNER}\nUsage: ollama serve | ollama list | ollama pull MODEL | ollama --version",
        file=sys.stderr,
    )
    if verb and verb not in ("serve", "list", "ls", "pull", "-h", "--help", "help"):
        print(f'Error: unknown command "{verb}" for "ollama"', file=sys.stderr)
    return 0 if verb in ("-h", "--help", "help") else 1


if __name__ == "__main__":
    sys.exit(main())
