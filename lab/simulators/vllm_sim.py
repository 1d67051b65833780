#!/usr/bin/env python3
"""vLLM SIMULATOR for the memoryx-deploy lab. This is NOT vLLM.

It stands in for the ``vllm/vllm-openai`` image, whose entrypoint is ``vllm serve``: the
command line is the one of ``vllm serve`` (the flags this project may use, see
``build_parser``; an optional leading ``serve`` is accepted so this file can be installed as
``/usr/local/bin/vllm``). Unknown flags fail like vLLM's argparse does (exit 2).

What it reproduces, because the deployment depends on it:

* GPUs come from ``NVIDIA_VISIBLE_DEVICES`` (set by Docker's ``--gpus``/device_requests);
  none visible -> ``RuntimeError: No CUDA GPUs are available`` (exit 1).
* ``--model`` must be a local directory holding ``config.json`` (the sim never uses the
  network, as with ``HF_HUB_OFFLINE=1``), else vLLM's ``ValueError`` (exit 1).
* ``--gpu-memory-utilization`` needs that share of the card FREE at start. Every simulator on a
  host shares a ledger, ``$VLLM_SIM_GPU_DIR/gpu<N>/<id>.json`` ({"state", "gib", "name"}), each
  file flock-ed by its live owner (an unlocked file is stale and is deleted). An instance that
  is still loading counts as using all remaining memory, so two instances started at once on
  one GPU fail exactly as vLLM's memory profiling makes them fail.
* The HTTP server binds only after the (simulated) load, like vLLM.
* ``/health``, ``/v1/models``, ``/v1/chat/completions``, ``/v1/completions`` (streaming as SSE,
  one chunk per token, TTFT then TPOT per token), ``/metrics`` (Prometheus text, with vLLM
  0.19.1's ``vllm:kv_cache_usage_perc``: the KV blocks of the running requests, each holding
  its prompt and answer in ``--block-size`` token blocks, over the KV budget:
  ``--num-gpu-blocks-override``, else room for ``--max-num-seqs`` sequences of max_model_len),
  ``--max-num-seqs`` with a FIFO waiting queue, ``--api-key``.
* Constrained answers (``response_format`` json_object and json_schema, ``structured_outputs``,
  ``tools``/``tool_choice``): JSON or tool calls a client can parse, and vLLM's 400s; see
  ``vllm_structured.py``. MemoryX's memory pipeline runs in JSON mode.
* ``n`` choices, ``stop`` strings (``stop_reason``) and ``logprobs``/``top_logprobs`` in OpenAI's
  shapes, with vLLM's 400s (``--max-logprobs`` 20); ``stream_options.include_usage``'s usage
  chunk. See ``vllm_sampling.py``: clients send them and the gateway passes them on.
* SIGTERM: with ``--shutdown-timeout N`` new requests get 503 and in-flight ones get up to N s
  to finish; without it in-flight requests are aborted at once (connections closed).

Simulator-only environment:
  VLLM_SIM_LOAD_SECONDS  simulated engine load time (default 2.0)
  VLLM_SIM_TTFT_MS       time to first token, ms (default 30)
  VLLM_SIM_TPOT_MS       time per following output token, ms (default 5)
  VLLM_SIM_BATCH_COST    decode step time added per other running sequence, as a share of
                         TPOT (default 0.06: 16 running sequences take 1.9x TPOT per step, as a
                         memory-bound decode on one GPU slows with its batch)
  VLLM_SIM_GPU_DIR       GPU memory ledger directory shared by all sims of a host
                         (default /run/nvidia-sim; created if missing)
  VLLM_SIM_GPUS_FILE     the host's GPUs, JSON list of {"index": int, "name": str,
                         "memory_mib": int} (default /etc/nvidia-sim/gpus.json)

Simulator-only HTTP endpoints:
  GET  /sim/info         {"simulator": "vllm", "visible_devices", "gpu", "args", ...}
  POST /sim/engine-dead  marks the engine dead: /health answers 503, generation 500
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import vllm_sampling
import vllm_structured as structured

BANNER = "vLLM SIMULATOR (memoryx-deploy lab)"
NO_GPU = "RuntimeError: No CUDA GPUs are available"
MAX_BODY = 64 * 1024 * 1024
LEDGER_PAD = 512
VOCAB = structured.WORDS


class SimError(Exception):
    """A start-up failure; its text is printed as the last line on stderr (exit 1)."""


class Aborted(Exception):
    """The request was aborted because the server is stopping."""


def log(message: str, level: str = "INFO") -> None:
    stamp = time.strftime("%m-%d %H:%M:%S")
    print(f"{level} {stamp} [vllm-simulator] {message}", flush=True)


# --------------------------------------------------------------------------- command line


# The flags this simulator models, with the types and defaults it needs; every other flag of
# the flag list is accepted (and ignored, as its effect is not simulated).
MODELLED: dict[str, tuple[Any, Any]] = {  # dest -> (type, default)
    "port": (int, 8000),
    "host": (str, "0.0.0.0"),
    "gpu_memory_utilization": (float, 0.9),
    "max_model_len": (int, None),
    "max_num_seqs": (int, 256),
    "tensor_parallel_size": (int, 1),
    "shutdown_timeout": (int, 0),
    "block_size": (int, 16),
    "num_gpu_blocks_override": (int, None),
    "uvicorn_log_level": (str, "info"),
}
DEFAULT_VERSION = "0.19.1"


def flags_file() -> Path:
    """The flag list of the vLLM version this simulator stands in for: generated from vLLM
    itself by scripts/vllm-flags (memoryx_deploy/data), copied into the image."""
    given = os.environ.get("VLLM_SIM_FLAGS", "")
    if given:
        return Path(given)
    version = os.environ.get("VLLM_SIM_VERSION", DEFAULT_VERSION)
    return Path(__file__).resolve().parent / "vllm-flags" / f"vllm-flags-{version}.json"


def build_parser(flags: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """`vllm serve`'s parser with exactly the flags of the flag list (its actions)."""
    data = flags if flags is not None else json.loads(flags_file().read_text())
    p = argparse.ArgumentParser(
        prog="vllm serve",
        description=f"{BANNER}: stands in for 'vllm serve' {data['vllm_version']} "
        "(OpenAI-compatible API).",
    )
    p.add_argument("model_tag", nargs="?", default=None, help="model (positional form)")
    for action in data["actions"]:
        add_action(p, action)
    return p


def add_action(p: argparse.ArgumentParser, action: dict[str, Any]) -> None:
    dest = str(action["dest"])
    kind, default = MODELLED.get(dest, (str, None))
    if action["kind"] == "boolean_pair":  # argparse adds the --no- form itself
        positive = [o for o in action["options"] if not o.startswith("--no-")]
        p.add_argument(*positive, dest=dest, action=argparse.BooleanOptionalAction, default=None)
    elif action["kind"] == "switch":
        p.add_argument(*action["options"], dest=dest, action="store_true", default=None)
    else:
        choices = action.get("choices")
        p.add_argument(
            *action["options"],
            dest=dest,
            type=kind,
            default=default,
            nargs=action.get("nargs"),
            choices=[kind(c) for c in choices] if choices else None,
        )


def normalize_argv(argv: list[str]) -> list[str]:
    """vLLM's FlexibleArgumentParser: `--max_model_len` is `--max-model-len`."""
    result = []
    for arg in argv:
        if arg.startswith("--"):
            key, sep, value = arg.partition("=")
            arg = key.replace("_", "-") + sep + value
        result.append(arg)
    return result


@dataclass(frozen=True)
class Settings:
    """Simulator-only knobs (environment)."""

    load_seconds: float
    ttft: float
    tpot: float
    batch_cost: float
    gpu_dir: Path
    gpus_file: Path

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            load_seconds=env_float("VLLM_SIM_LOAD_SECONDS", 2.0),
            ttft=env_float("VLLM_SIM_TTFT_MS", 30.0) / 1000.0,
            tpot=env_float("VLLM_SIM_TPOT_MS", 5.0) / 1000.0,
            batch_cost=env_float("VLLM_SIM_BATCH_COST", 0.06),
            gpu_dir=Path(os.environ.get("VLLM_SIM_GPU_DIR", "/run/nvidia-sim")),
            gpus_file=Path(os.environ.get("VLLM_SIM_GPUS_FILE", "/etc/nvidia-sim/gpus.json")),
        )


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SimError(f"ValueError: {name}={raw!r} is not a number (simulator setting)") from None
    if value < 0:
        raise SimError(f"ValueError: {name}={raw!r} must not be negative (simulator setting)")
    return value


# --------------------------------------------------------------------------- model and GPUs


@dataclass(frozen=True)
class Model:
    path: str
    served_names: list[str]
    max_model_len: int
    auto_tools: bool = False  # --enable-auto-tool-choice with a --tool-call-parser


def resolve_model(args: argparse.Namespace) -> Model:
    path = args.model or args.model_tag or "facebook/opt-125m"
    config = Path(path) / "config.json"
    if not config.is_file():
        raise SimError(
            f"ValueError: Invalid repository ID or local directory specified: '{path}'.\n"
            "Please verify the following requirements:\n"
            "1. Provide a valid Hugging Face repository ID.\n"
            "2. Specify a local directory that contains a recognized configuration file."
        )
    try:
        data = json.loads(config.read_text())
    except (OSError, ValueError) as error:
        # transformers' own words for an unreadable config, which vLLM passes on
        raise SimError(f"OSError: It looks like the config file at '{config}' is not a valid JSON file.") from error
    derived = 8192
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        derived = int(data.get("max_position_embeddings", derived))
    max_len = args.max_model_len if args.max_model_len else derived
    names = list(args.served_model_name) if args.served_model_name else [path]
    auto_tools = bool(getattr(args, "enable_auto_tool_choice", False) and getattr(args, "tool_call_parser", None))
    return Model(path=path, served_names=names, max_model_len=max_len, auto_tools=auto_tools)


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str
    memory_mib: int
    compute_cap: str = ""  # "7.0", from the stand-in driver's table

    @property
    def memory_gib(self) -> float:
        return self.memory_mib / 1024.0

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "name": self.name, "memory_mib": self.memory_mib}


def visible_devices() -> list[str]:
    raw = os.environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if raw.lower() in ("", "void", "none"):
        return []
    return [item.strip() for item in raw.split(",") if item.strip()]


def load_gpus(path: Path) -> list[Gpu]:
    """The stand-in driver's GPU table: {"gpus": [{index, name, memory_total_mib}, ...]}
    as lab/nvidia writes it, or a bare list of {index, name, memory_mib}."""
    try:
        data = json.loads(path.read_text())
        table = data["gpus"] if isinstance(data, dict) else data
        return [
            Gpu(
                int(g["index"]),
                str(g["name"]),
                int(g.get("memory_total_mib", g.get("memory_mib"))),
                str(g.get("compute_cap", "")),
            )
            for g in table
        ]
    except (OSError, ValueError, TypeError, KeyError):
        return []


def select_gpus(devices: list[str], known: list[Gpu], tensor_parallel: int) -> list[Gpu]:
    if not devices:
        raise SimError(NO_GPU)
    if "all" in devices:
        chosen = known
    else:
        by_index = {str(g.index): g for g in known}
        if any(d not in by_index for d in devices):
            raise SimError(NO_GPU)
        chosen = [by_index[d] for d in devices]
    if not chosen:
        raise SimError(NO_GPU)
    if tensor_parallel > len(chosen):
        raise SimError(
            f"ValueError: The number of required GPUs ({tensor_parallel}) exceeds the total "
            f"number of available GPUs ({len(chosen)})."
        )
    return chosen[:tensor_parallel]


def declared_archs() -> list[str]:
    """The compute capabilities this image's kernels are built for (the image's
    VLLM_SIM_CUDA_ARCHS, as TORCH_CUDA_ARCH_LIST lists them); unset: every GPU."""
    return os.environ.get("VLLM_SIM_CUDA_ARCHS", "").split()


def runs_on(capability: str, archs: list[str]) -> bool:
    """CUDA's rule: a kernel built for X.Y runs on X.Z with Z >= Y; PTX ("+PTX") also on any
    later capability. No declared list: anything."""
    if not archs or not capability:
        return True
    major, _, minor = capability.partition(".")
    for arch in archs:
        a_major, _, a_minor = arch.replace("+PTX", "").partition(".")
        if a_major == major and int(a_minor or 0) <= int(minor or 0):
            return True
        if arch.endswith("+PTX") and (int(a_major), int(a_minor or 0)) <= (int(major), int(minor or 0)):
            return True
    return False


def check_kernels(gpus: list[Gpu], archs: list[str]) -> None:
    """A GPU whose compute capability the image has no kernel for fails as torch does."""
    for gpu in gpus:
        if not runs_on(gpu.compute_cap, archs):
            sm = "sm_" + gpu.compute_cap.replace(".", "")
            built = " ".join("sm_" + a.replace("+PTX", "").replace(".", "") for a in archs)
            raise SimError(
                f"UserWarning: {gpu.name} with CUDA capability {sm} is not compatible with the "
                f"current PyTorch installation. The current PyTorch install supports CUDA "
                f"capabilities {built}.\n"
                "RuntimeError: CUDA error: no kernel image is available for execution on the device"
            )


# --------------------------------------------------------------------------- memory ledger


def _read_entry(fd: int) -> dict[str, Any]:
    for _ in range(5):
        raw = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        try:
            data = json.loads(raw)
            if isinstance(data, dict):
                return data
        except ValueError:
            pass
        time.sleep(0.01)
    return {"state": "loading", "gib": 0.0, "name": "?"}  # unreadable: assume the worst


def live_entries(gpu_dir: Path, own: Path | None) -> list[dict[str, Any]]:
    """Entries of live simulators on this GPU; stale files (lock obtainable) are deleted."""
    entries = []
    for path in sorted(gpu_dir.glob("*.json")):
        if own is not None and path == own:
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                entries.append(_read_entry(fd))
                continue
            log(f"removing stale ledger entry {path} (its simulator is gone)")
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return entries


def free_gib(card_gib: float, others: list[dict[str, Any]]) -> float:
    if any(entry.get("state") != "ready" for entry in others):
        return 0.0  # a loading instance profiles (and may touch) all the remaining memory
    used = sum(float(entry.get("gib", 0.0)) for entry in others)
    return max(card_gib - used, 0.0)


class LedgerEntry:
    """This simulator's reservation on one GPU, flock-ed for the lifetime of the process."""

    def __init__(self, gpu: Gpu, root: Path, name: str, gib: float) -> None:
        self.gpu = gpu
        self.dir = root / f"gpu{gpu.index}"
        self.name = name
        self.gib = gib
        ident = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = self.dir / f"{ident}.json"
        self._fd: int | None = None

    def admit(self, utilization: float) -> None:
        """Check free memory and register as loading, atomically per GPU."""
        self.dir.mkdir(parents=True, exist_ok=True)
        gate = os.open(self.dir / ".admission.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
            total = self.gpu.memory_gib
            free = free_gib(total, live_entries(self.dir, None))
            wanted = utilization * total
            if round(free, 6) < round(wanted, 6):
                raise SimError(
                    f"ValueError: Free memory on device ({free:.2f}/{total:.2f} GiB) on startup "
                    f"is less than desired GPU memory utilization ({utilization}, "
                    f"{wanted:.2f} GiB). Decrease GPU memory utilization or reduce GPU memory "
                    "used by other processes."
                )
            self._create("loading")
        finally:
            os.close(gate)

    def _create(self, state: str) -> None:
        tmp = self.path.with_name(f".{self.path.stem}.tmp")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd = fd
        self.set_state(state)
        os.rename(tmp, self.path)  # appears only once locked: readers never see it unlocked

    def set_state(self, state: str) -> None:
        if self._fd is None:
            return
        data = json.dumps({"state": state, "gib": round(self.gib, 4), "name": self.name})
        os.pwrite(self._fd, data.ljust(LEDGER_PAD).encode(), 0)

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


# --------------------------------------------------------------------------- engine


@dataclass
class Engine:
    """Scheduling state shared by the request threads."""

    model: Model
    max_num_seqs: int
    ttft: float
    tpot: float
    block_size: int = 16
    batch_cost: float = 0.0  # share of tpot added to a decode step per other running sequence
    kv_blocks: int = 0  # the KV budget in blocks (0: room for max_num_seqs full-length sequences)
    cond: threading.Condition = field(default_factory=threading.Condition)
    stop_event: threading.Event = field(default_factory=threading.Event)
    running: int = 0
    waiting: deque[object] = field(default_factory=deque)
    inflight: set[socket.socket] = field(default_factory=set)
    draining: bool = False
    aborted: bool = False
    dead: bool = False
    success: dict[str, int] = field(default_factory=lambda: {"stop": 0, "length": 0})
    prompt_tokens: int = 0
    generation_tokens: int = 0
    blocks_in_use: int = 0

    def __post_init__(self) -> None:
        if self.kv_blocks <= 0:
            per_sequence = -(-self.model.max_model_len // max(self.block_size, 1))
            self.kv_blocks = max(self.max_num_seqs, 1) * per_sequence

    def kv_cache_usage(self) -> float:
        """The share of the KV budget the running requests hold (0..1), as vLLM reports it."""
        with self.cond:
            return min(self.blocks_in_use / self.kv_blocks, 1.0) if self.kv_blocks else 0.0

    @contextlib.contextmanager
    def kv_cache(self, tokens: int) -> Iterator[None]:
        """The KV blocks of one running request holding `tokens` tokens (prompt and answer)."""
        blocks = -(-tokens // max(self.block_size, 1))
        with self.cond:
            self.blocks_in_use += blocks
        try:
            yield
        finally:
            with self.cond:
                self.blocks_in_use -= blocks

    @contextlib.contextmanager
    def request(self, conn: socket.socket) -> Iterator[None]:
        """An in-flight request (waiting or running); SIGTERM handling waits for these."""
        with self.cond:
            self.inflight.add(conn)
        try:
            yield
        finally:
            with self.cond:
                self.inflight.discard(conn)
                self.cond.notify_all()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """One of --max-num-seqs running slots, granted in FIFO order."""
        ticket = object()
        with self.cond:
            self.waiting.append(ticket)
            while not self.aborted and (
                self.waiting[0] is not ticket or self.running >= self.max_num_seqs
            ):
                self.cond.wait()
            self.waiting.remove(ticket)
            if self.aborted:
                self.cond.notify_all()
                raise Aborted
            self.running += 1
            self.cond.notify_all()
        try:
            yield
        finally:
            with self.cond:
                self.running -= 1
                self.cond.notify_all()

    def step(self) -> float:
        """One decode step's time: TPOT, longer the more sequences run in the batch."""
        with self.cond:
            others = max(self.running - 1, 0)
        return self.tpot * (1.0 + self.batch_cost * others)

    def pause(self, seconds: float) -> None:
        if self.stop_event.wait(seconds):
            raise Aborted

    def finished(self, reason: str, prompt: int, generated: int) -> None:
        with self.cond:
            self.success[reason] = self.success.get(reason, 0) + 1
            self.prompt_tokens += prompt
            self.generation_tokens += generated

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            self.draining = True
            while self.inflight and time.monotonic() < deadline:
                self.cond.wait(max(deadline - time.monotonic(), 0.0))

    def abort(self) -> None:
        with self.cond:
            self.draining = True
            self.aborted = True
            self.stop_event.set()
            conns = list(self.inflight)
            self.cond.notify_all()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


# --------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Generation:
    kind: str  # "chat" | "completion"
    model_name: str
    prompt_text: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    include_usage: bool
    constraint: structured.Constraint = structured.TEXT
    sampling: vllm_sampling.Sampling = vllm_sampling.PLAIN


@dataclass(frozen=True)
class Choice:
    """One of the n answers: its tokens, finish reason, stop string and tool calls."""

    index: int
    tokens: list[str]
    reason: str
    stop: str | None
    calls: list[dict[str, Any]]


class RequestError(Exception):
    def __init__(self, status: int, message: str, err_type: str, param: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.err_type,
                "param": self.param,
                "code": self.status,
            }
        }


def bad_request(message: str, param: str | None = None) -> RequestError:
    return RequestError(400, message, "BadRequestError", param)


def count_tokens(text: str) -> int:
    return max(len(text.split()), 1)


def message_text(messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise bad_request("Field required: 'messages' must be a non-empty list", "messages")
    parts = []
    for msg in messages:
        if not isinstance(msg, dict) or "role" not in msg:
            raise bad_request("Each message needs a 'role'", "messages")
        content = msg.get("content") or ""
        if isinstance(content, list):
            content = " ".join(str(c.get("text", "")) for c in content if isinstance(c, dict))
        parts.append(f"{msg['role']}: {content}")
    return "\n".join(parts)


def prompt_of(body: dict[str, Any]) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return " ".join(str(t) for t in prompt)
    if not isinstance(prompt, str):
        raise bad_request("Field required: 'prompt' must be a string", "prompt")
    return prompt


def parse_generation(kind: str, body: Any, model: Model) -> Generation:
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object")
    name = body.get("model") or model.served_names[0]
    if name not in model.served_names:
        raise RequestError(404, f"The model `{name}` does not exist.", "NotFoundError", "model")
    if kind == "chat":
        text = message_text(body.get("messages"))
        prompt_tokens = count_tokens(text) + 4 * text.count("\n") + 7
    else:
        text = prompt_of(body)
        prompt_tokens = count_tokens(text) + 1
    room = model.max_model_len - prompt_tokens
    raw = body.get("max_completion_tokens") or body.get("max_tokens")
    if raw is None:  # vLLM's defaults: a chat answer may fill the context, a completion has 16
        max_tokens = room if kind == "chat" else min(16, room)
    elif isinstance(raw, int) and not isinstance(raw, bool) and raw >= 1:
        max_tokens = raw
    else:
        raise bad_request("max_tokens must be at least 1", "max_tokens")
    if max_tokens < 1 or prompt_tokens + max_tokens > model.max_model_len:
        raise bad_request(
            f"This model's maximum context length is {model.max_model_len} tokens. However, you "
            f"requested {prompt_tokens + max(max_tokens, 0)} tokens ({prompt_tokens} in the "
            f"messages, {max(max_tokens, 0)} in the completion). Please reduce the length of the "
            "messages or completion."
        )
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    try:
        constraint = structured.constraint(kind, body, model.auto_tools)
        chosen = vllm_sampling.sampling(kind, body)
    except structured.StructuredError as err:  # vllm_sampling's refusals too
        raise bad_request(str(err), err.param) from None
    return Generation(
        kind, name, text, prompt_tokens, max_tokens, bool(body.get("stream")), include_usage, constraint, chosen
    )


def generate_tokens(prompt: str, max_tokens: int) -> tuple[list[str], str]:
    """Deterministic output: the same prompt always gives the same words."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    natural = 8 + digest[0] % 24
    count = min(natural, max_tokens)
    tokens = []
    for i in range(count):
        word = VOCAB[hashlib.sha256(digest + i.to_bytes(4, "big")).digest()[0] % len(VOCAB)]
        tokens.append(word if i == 0 else f" {word}")
    return tokens, ("stop" if natural <= max_tokens else "length")


def pieces_of(text: str) -> list[str]:
    """A text as the simulator's tokens: its words, each after its space."""
    return [(" " if i else "") + word for i, word in enumerate(text.split(" "))]


def constrained(gen: Generation, tokens: list[str], reason: str) -> tuple[list[str], str, list[dict[str, Any]]]:
    """The answer under the request's constraint: (tokens, finish reason, tool calls). A JSON
    answer longer than max_tokens is cut, finish_reason "length", as vLLM cuts it."""
    kind, seed = gen.constraint.kind, gen.prompt_text.encode("utf-8")
    if kind == "text":
        return tokens, reason, []
    if kind == "tools":
        call = structured.tool_call(gen.constraint, seed)
        return pieces_of(call["function"]["arguments"]), "stop" if gen.constraint.named else "tool_calls", [call]
    pieces = pieces_of(structured.answer_text(gen.constraint, seed, "".join(tokens)))
    if len(pieces) > gen.max_tokens:
        return pieces[: gen.max_tokens], "length", []
    return pieces, "stop", []


def choices_of(gen: Generation) -> list[Choice]:
    """The n answers: the first as the prompt gives it, the others from the prompt and their
    index; each ends before a stop string it would contain (tool calls excepted)."""
    choices = []
    for index in range(gen.sampling.n):
        seed = gen.prompt_text if index == 0 else f"{gen.prompt_text}\x00choice {index}"
        tokens, reason, calls = constrained(gen, *generate_tokens(seed, gen.max_tokens))
        stop = None
        if gen.sampling.stop and not calls:
            tokens, stop = vllm_sampling.cut_at_stop(tokens, gen.sampling.stop)
            reason = "stop" if stop else reason
        choices.append(Choice(index, tokens, reason, stop, calls))
    return choices


def logprobs_of(gen: Generation, pieces: list[str], offset: int = 0) -> dict[str, Any] | None:
    top = gen.sampling.logprobs
    if top is None:
        return None
    if gen.kind == "chat":
        return vllm_sampling.chat_logprobs(pieces, top)
    return vllm_sampling.completion_logprobs(pieces, top, offset)


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }


def envelope(gen: Generation, rid: str, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAI response object around its choices (answers and stream chunks alike)."""
    return {"id": rid, "object": obj, "created": int(time.time()), "model": gen.model_name, "choices": choices}


def full_response(gen: Generation, rid: str, choices: list[Choice], generated: int) -> dict[str, Any]:
    bodies = []
    for c in choices:
        text = "".join(c.tokens)
        if gen.kind == "chat":
            body: dict[str, Any] = {
                "index": c.index,
                "message": {"role": "assistant", "content": None if c.calls else text, "tool_calls": c.calls},
            }
        else:
            body = {"index": c.index, "text": text}
        body.update({"logprobs": logprobs_of(gen, c.tokens), "finish_reason": c.reason, "stop_reason": c.stop})
        bodies.append(body)
    obj = "chat.completion" if gen.kind == "chat" else "text_completion"
    return {**envelope(gen, rid, obj, bodies), "usage": usage(gen.prompt_tokens, generated)}


def chunk(gen: Generation, rid: str, index: int, piece: dict[str, Any], reason: str | None,
          logprobs: dict[str, Any] | None = None, stop: str | None = None) -> dict[str, Any]:
    choice = {"index": index, **piece, "logprobs": logprobs, "finish_reason": reason}
    if reason is not None:  # the last chunk of a choice says which stop string ended it
        choice["stop_reason"] = stop
    return envelope(gen, rid, chunk_object(gen), [choice])


def chunk_object(gen: Generation) -> str:
    return "chat.completion.chunk" if gen.kind == "chat" else "text_completion"


# --------------------------------------------------------------------------- metrics


def metrics_text(engine: Engine) -> str:
    label = f'model_name="{engine.model.served_names[0]}"'
    with engine.cond:
        running, waiting = engine.running, len(engine.waiting)
        success = dict(engine.success)
        prompt, generated = engine.prompt_tokens, engine.generation_tokens
    lines = [
        "# HELP vllm:num_requests_running Number of requests in model execution batches.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{{{label}}} {float(running)}",
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{{{label}}} {float(waiting)}",
        "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f'vllm:kv_cache_usage_perc{{{label},engine="0"}} {engine.kv_cache_usage()}',
        "# HELP vllm:request_success_total Count of successfully processed requests.",
        "# TYPE vllm:request_success_total counter",
    ]
    for reason in sorted(success):
        labels = f'finished_reason="{reason}",{label}'
        lines.append(f"vllm:request_success_total{{{labels}}} {float(success[reason])}")
    lines += [
        "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
        "# TYPE vllm:prompt_tokens_total counter",
        f"vllm:prompt_tokens_total{{{label}}} {float(prompt)}",
        "# HELP vllm:generation_tokens_total Number of generation tokens processed.",
        "# TYPE vllm:generation_tokens_total counter",
        f"vllm:generation_tokens_total{{{label}}} {float(generated)}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HTTP


class Handler(BaseHTTPRequestHandler):
    """OpenAI-compatible endpoints of the simulated vLLM server."""

    server_version = "vllm-simulator"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn / Go servers do: no 40 ms delayed-ACK stalls
    engine: Engine
    info: dict[str, Any]
    api_key: str | None
    access_log: bool

    # ---- plumbing

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        if self.access_log:
            log(f"{self.client_address[0]}:{self.client_address[1]} - {format % args}")

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, obj: Any) -> None:
        self.send_body(status, json.dumps(obj).encode(), "application/json")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise bad_request("Request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def authorised(self) -> bool:
        if not self.api_key or not self.path.startswith("/v1"):
            return True
        return self.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    # ---- routing

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self.authorised():
            self.send_json(401, {"error": "Unauthorized"})
        elif path == "/health":
            self.send_body(200 if self.healthy() else 503, b"", "application/json")
        elif path == "/v1/models":
            self.send_json(200, self.models())
        elif path == "/metrics":
            body = metrics_text(self.engine).encode()
            self.send_body(200, body, "text/plain; version=0.0.4; charset=utf-8")
        elif path == "/version":
            self.send_json(200, {"version": "simulator"})
        elif path == "/sim/info":
            self.send_json(200, self.info)
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            raw = self.read_body()
        except (RequestError, ValueError):
            self.close_connection = True
            self.send_json(400, bad_request("Could not read the request body").body())
            return
        if not self.authorised():
            self.send_json(401, {"error": "Unauthorized"})
        elif path == "/v1/chat/completions":
            self.generation("chat", raw)
        elif path == "/v1/completions":
            self.generation("completion", raw)
        elif path == "/sim/engine-dead":
            self.engine.dead = True
            log("engine marked dead (sim-only request)", "ERROR")
            self.send_json(200, {"dead": True})
        else:
            self.send_json(404, {"detail": "Not Found"})

    def healthy(self) -> bool:
        return not (self.engine.dead or self.engine.draining)

    def models(self) -> dict[str, Any]:
        model = self.engine.model
        created = int(self.info["started"])
        data = [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "vllm",
                "root": model.path,
                "parent": None,
                "max_model_len": model.max_model_len,
            }
            for name in model.served_names
        ]
        return {"object": "list", "data": data}

    # ---- generation

    def generation(self, kind: str, raw: bytes) -> None:
        engine = self.engine
        try:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise bad_request(f"Invalid JSON body: {exc}") from None
            gen = parse_generation(kind, body, engine.model)
            if engine.draining:
                raise RequestError(503, "The server is shutting down.", "ServiceUnavailableError")
            if engine.dead:
                raise RequestError(500, "The engine is dead (simulated).", "InternalServerError")
        except RequestError as err:
            self.send_json(err.status, err.body())
            return
        try:
            with engine.request(self.connection), engine.slot():
                self.serve_generation(gen)
        except (Aborted, OSError):
            self.close_connection = True

    def serve_generation(self, gen: Generation) -> None:
        rid = ("chatcmpl-" if gen.kind == "chat" else "cmpl-") + uuid.uuid4().hex
        choices = choices_of(gen)
        longest = max(len(c.tokens) for c in choices)
        generated = sum(len(c.tokens) for c in choices)
        reason = choices[0].reason
        # vLLM's output processor counts a finished request (vllm:request_success_total) before
        # the API server writes its last bytes: a client that reads /metrics after its answer
        # finds the request counted. So the count comes before the response (or before [DONE]).
        with self.engine.kv_cache(gen.prompt_tokens + generated):
            if gen.stream:
                self.stream(gen, rid, choices, generated)
            else:
                self.engine.pause(self.engine.ttft + self.engine.step() * max(longest - 1, 0))
                self.engine.finished(reason, gen.prompt_tokens, generated)
                self.send_json(200, full_response(gen, rid, choices, generated))

    def stream(self, gen: Generation, rid: str, choices: list[Choice], generated: int) -> None:
        """One chunk per token of each choice, the choices' tokens of one step together."""
        chunked = self.request_version == "HTTP/1.1"
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()

        def emit(text: str) -> None:
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            self.wfile.flush()

        def event(obj: Any) -> None:
            emit(f"data: {json.dumps(obj)}\n\n")

        self.engine.pause(self.engine.ttft)
        if gen.kind == "chat":
            for c in choices:
                event(chunk(gen, rid, c.index, {"delta": {"role": "assistant", "content": ""}}, None))
        for c in choices:  # an answer a stop string cut to nothing finishes at once
            if not c.tokens:
                event(chunk(gen, rid, c.index, self.piece(gen, c, None), c.reason, None, c.stop))
        offsets = [0] * len(choices)
        for i in range(max(len(c.tokens) for c in choices)):
            if i:
                self.engine.pause(self.engine.step())
            for c in choices:
                if i >= len(c.tokens):
                    continue
                token, last = c.tokens[i], i == len(c.tokens) - 1
                event(chunk(gen, rid, c.index, self.piece(gen, c, i), c.reason if last else None,
                            logprobs_of(gen, [token], offsets[c.index]), c.stop))
                offsets[c.index] += len(token)
        if gen.include_usage:
            final = envelope(gen, rid, chunk_object(gen), [])
            final["usage"] = usage(gen.prompt_tokens, generated)
            event(final)
        self.engine.finished(choices[0].reason, gen.prompt_tokens, generated)
        emit("data: [DONE]\n\n")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


    @staticmethod
    def piece(gen: Generation, c: Choice, i: int | None) -> dict[str, Any]:
        """The delta of token i of choice c (None: an empty one); a tool call's id, type and
        name come with its first piece, then its arguments piece by piece."""
        token = "" if i is None else c.tokens[i]
        if c.calls:
            call = c.calls[0]
            head = {"id": call["id"], "type": call["type"]} if i == 0 else {}
            name = {"name": call["function"]["name"]} if i == 0 else {}
            return {"delta": {"tool_calls": [{"index": 0, **head, "function": {**name, "arguments": token}}]}}
        return {"delta": {"content": token}} if gen.kind == "chat" else {"text": token}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # vLLM's uvicorn listens with a backlog of 2048; socketserver's default of 5 drops the SYNs of
    # a burst of new connections (a 1 s retransmit each), which vLLM never does.
    request_queue_size = 2048

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if not isinstance(exc, OSError):
            super().handle_error(request, client_address)


# --------------------------------------------------------------------------- main


def make_handler(engine: Engine, info: dict[str, Any], args: argparse.Namespace) -> type[Handler]:
    class BoundHandler(Handler):
        pass

    BoundHandler.engine = engine
    BoundHandler.info = info
    keys = args.api_key or [os.environ.get("VLLM_API_KEY") or None]
    BoundHandler.api_key = keys[0]
    BoundHandler.access_log = args.uvicorn_log_level in ("info", "debug", "trace")
    return BoundHandler


def install_signals(stop: threading.Event) -> None:
    def on_signal(signum: int, _frame: Any) -> None:
        log(f"received signal {signal.Signals(signum).name}, shutting down")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def start(
    args: argparse.Namespace, settings: Settings
) -> tuple[Model, list[Gpu], list[LedgerEntry]]:
    # The platform (GPUs) is detected before the model is resolved, as vLLM does at import.
    gpus = select_gpus(visible_devices(), load_gpus(settings.gpus_file), args.tensor_parallel_size)
    check_kernels(gpus, declared_archs())
    model = resolve_model(args)
    entries: list[LedgerEntry] = []
    try:
        for gpu in gpus:
            gib = args.gpu_memory_utilization * gpu.memory_gib
            entry = LedgerEntry(gpu, settings.gpu_dir, model.served_names[0], gib)
            entry.admit(args.gpu_memory_utilization)
            entries.append(entry)
    except BaseException:
        for entry in entries:
            entry.release()
        raise
    return model, gpus, entries


def serve(
    args: argparse.Namespace,
    settings: Settings,
    model: Model,
    gpus: list[Gpu],
    entries: list[LedgerEntry],
    stop: threading.Event,
) -> int:
    log(f"loading model {model.path} (simulated, {settings.load_seconds:.2f} s)")
    if stop.wait(settings.load_seconds):
        return 0
    for entry in entries:
        entry.set_state("ready")
    engine = Engine(model, args.max_num_seqs, settings.ttft, settings.tpot,
                    block_size=args.block_size, batch_cost=settings.batch_cost,
                    kv_blocks=args.num_gpu_blocks_override or 0)
    info = {
        "simulator": "vllm",
        "banner": BANNER,
        "started": time.time(),
        "visible_devices": os.environ.get("NVIDIA_VISIBLE_DEVICES", ""),
        "gpu": gpus[0].as_dict(),
        "gpus": [g.as_dict() for g in gpus],
        "args": vars(args),
        "gpu_memory_reserved_gib": round(entries[0].gib, 4),
        "ledger": [str(e.path) for e in entries],
        "settings": {
            "load_seconds": settings.load_seconds,
            "ttft_ms": settings.ttft * 1000,
            "tpot_ms": settings.tpot * 1000,
            "batch_cost": settings.batch_cost,
        },
    }
    try:
        server = Server((args.host, args.port), make_handler(engine, info, args))
    except OSError as exc:
        print(
            f"OSError: [Errno {exc.errno}] could not bind on ({args.host!r}, {args.port}): "
            f"{exc.strerror}",
            file=sys.stderr,
            flush=True,
        )
        return 1
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    log(f"Starting vLLM API server (simulated) on http://{args.host}:{args.port}")
    log("Application startup complete.")
    while not stop.wait(0.5):
        pass
    if args.shutdown_timeout > 0:
        log(f"draining in-flight requests (up to {args.shutdown_timeout} s)")
        engine.drain(float(args.shutdown_timeout))
    engine.abort()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    args = build_parser().parse_args(normalize_argv(argv))
    log(f"{BANNER}: this is a simulator, not vLLM. args: {' '.join(argv)}")
    stop = threading.Event()
    install_signals(stop)
    try:
        settings = Settings.from_env()
        model, gpus, entries = start(args, settings)
    except SimError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 1
    log(
        f"GPU {gpus[0].index} ({gpus[0].name}, {gpus[0].memory_gib:.2f} GiB): reserving "
        f"{entries[0].gib:.2f} GiB (ledger {entries[0].path})"
    )
    try:
        return serve(args, settings, model, gpus, entries, stop)
    finally:
        for entry in entries:
            entry.release()
        log("ledger released; simulator stopped")


if __name__ == "__main__":
    sys.exit(main())
