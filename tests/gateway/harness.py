"""Loopback harness for the gateway: simulators, role rendering, a real nginx.

Used by the fast tests (tests/gateway) and by bench/gateway_bench.py. Everything
listens on 127.0.0.1 and lives under a caller-given work directory.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.portpick import free_port

ROOT = Path(__file__).resolve().parents[2]
SIMULATORS = ROOT / "lab" / "simulators"
VENV_BIN = Path(sys.executable).parent  # the environment running the tests
NGINX = "/usr/sbin/nginx"
LOOPBACK = "127.0.0.1"
MODELS = {"llama3.1-8b": "llama", "qwen2.5-14b": "qwen", "bge-m3": "bge"}
GPUS = [{"index": 0, "name": "Tesla V100-SXM2-32GB", "memory_mib": 32768}]


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    source: str | None = None,
) -> Reply:
    """One HTTP/1.1 request to 127.0.0.1:port, from the loopback address `source` if given
    (the gateway's per-client limits count each address); a dict/list body is sent as JSON."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        data = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def is_up(port: int, path: str) -> bool:
    try:
        return request(port, "GET", path, timeout=1.0).status == 200
    except OSError:
        return False


def chat(
    model: str, text: str = "hello", max_tokens: int = 4, stream: bool = False
) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "stream": stream,
    }


@dataclass
class Process:
    """A child process with its log file; killed at teardown."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL: the backend vanishes mid-request."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=5)


def _spawn(name: str, port: int, argv: list[str], env: dict[str, str], workdir: Path) -> Process:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    return Process(name, port, proc, log)


def _await(process: Process, path: str, timeout: float = 20.0) -> Process:
    def ready() -> bool:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{process.name} exited: {process.log.read_text()[-2000:]}")
        return is_up(process.port, path)

    wait_until(ready, timeout, f"{process.name} on port {process.port}")
    return process


@dataclass(frozen=True)
class VllmOptions:
    served_model_name: str
    ttft_ms: float = 0.0
    tpot_ms: float = 0.0
    max_num_seqs: int = 16
    max_model_len: int = 8_000_000
    # bench only: set TCP_NODELAY on the simulator's sockets (uvicorn in real vLLM does;
    # the stdlib server does not, so a 40 ms delayed-ACK stall hides sub-ms effects)


def start_vllm(name: str, options: VllmOptions, workdir: Path) -> Process:
    """Start lab/simulators/vllm_sim.py on a free loopback port (own GPU ledger)."""
    home = workdir / name
    (home / "model").mkdir(parents=True, exist_ok=True)
    (home / "model" / "config.json").write_text(json.dumps({"max_position_embeddings": 8192}))
    (home / "gpus.json").write_text(json.dumps(GPUS))
    port = free_port()
    argv = [
        sys.executable, str(SIMULATORS / "vllm_sim.py"),
        "--model", str(home / "model"), "--served-model-name", options.served_model_name,
        "--host", LOOPBACK, "--port", str(port), "--max-num-seqs", str(options.max_num_seqs),
        "--max-model-len", str(options.max_model_len), "--gpu-memory-utilization", "0.4",
    ]
    env = {
        "NVIDIA_VISIBLE_DEVICES": "0",
        "VLLM_SIM_GPUS_FILE": str(home / "gpus.json"),
        "VLLM_SIM_GPU_DIR": str(home / "gpu"),
        "VLLM_SIM_LOAD_SECONDS": "0",
        "VLLM_SIM_TTFT_MS": str(options.ttft_ms),
        "VLLM_SIM_TPOT_MS": str(options.tpot_ms),
    }
    return _spawn(name, port, argv, env, workdir)


def start_ollama(name: str, models_dir: Path, workdir: Path, embed_ms: float = 0.0) -> Process:
    """Start lab/simulators/ollama_sim.py serve on a free loopback port."""
    port = free_port()
    env = {
        "OLLAMA_HOST": f"{LOOPBACK}:{port}",
        "OLLAMA_MODELS": str(models_dir),
        "OLLAMA_SIM_EMBED_MS": str(embed_ms),
        "OLLAMA_SIM_LOAD_MS": "0",
        "OLLAMA_KEEP_ALIVE": "-1",
    }
    argv = [sys.executable, str(SIMULATORS / "ollama_sim.py"), "serve"]
    return _spawn(name, port, argv, env, workdir)


def await_vllm(process: Process) -> Process:
    return _await(process, "/health")


def await_ollama(process: Process, pull: bool) -> Process:
    _await(process, "/api/version")
    if pull:
        reply = request(process.port, "POST", "/api/pull", {"model": "bge-m3", "stream": False})
        if reply.status != 200:
            raise RuntimeError(f"pull on {process.name} failed: {reply.status} {reply.body!r}")
    return process


def success_total(port: int) -> float:
    """vllm:request_success_total summed over finish reasons, read from a simulator."""
    text = request(port, "GET", "/metrics").body.decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:request_success_total{")
    )


def member(process: Process) -> dict[str, Any]:
    return {"name": process.name, "host": "loopback", "address": LOOPBACK, "port": process.port}


def pool(kind: str, model: str, members: list[Process]) -> dict[str, Any]:
    return {"kind": kind, "models": [model], "members": [member(p) for p in members]}


def stack_routes() -> list[dict[str, Any]]:
    """The route table of the source of truth, group_vars/all/memoryx.yml."""
    data = yaml.safe_load((ROOT / "group_vars" / "all" / "memoryx.yml").read_text())
    routes: list[dict[str, Any]] = data["memoryx_gateway"]["routes"]
    return routes


@dataclass
class Variant:
    """One rendered gateway configuration: staged in `staging`, run from `runtime`."""

    name: str
    port: int
    staging: Path
    runtime: Path
    pools: dict[str, Any]
    api_keys: list[dict[str, Any]] = field(default_factory=list)  # [{name, key, policy...}]; [] = auth off
    drained: list[str] = field(default_factory=list)
    routes: list[dict[str, Any]] = field(default_factory=stack_routes)
    models: dict[str, str] = field(default_factory=lambda: dict(MODELS))
    extra: dict[str, Any] = field(default_factory=dict)  # any other role variable
    router_port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)

    def as_vars(self) -> dict[str, Any]:
        auth = {"nginx_unified_auth": "required" if self.api_keys else "off"}
        return auth | self.extra | {
            "nginx_unified_staging_dir": str(self.staging),
            "nginx_unified_config_dir": str(self.staging),
            "nginx_unified_runtime_dir": str(self.runtime),
            "nginx_unified_pid_file": str(self.runtime / "nginx.pid"),
            "nginx_unified_router_pid_file": str(self.runtime / "router.pid"),
            "nginx_unified_router_port": self.router_port,
            "nginx_unified_status_port": self.status_port,
            "nginx_unified_closing_flag": str(self.runtime / "closing"),
            "nginx_unified_state_dir": str(self.staging),
            "nginx_unified_runtime_state_dir": str(self.runtime),
            "nginx_unified_http2_directive": False,  # Debian 12's nginx 1.22
            "nginx_unified_access_log": str(self.runtime / "access.log"),
            "nginx_unified_error_log": str(self.runtime / "error.log"),
            "nginx_unified_worker_user": "root",
            "nginx_unified_worker_processes": 2,
            "nginx_unified_listen_address": LOOPBACK,
            "nginx_unified_listen_port": self.port,
            "nginx_unified_pools": self.pools,
            "nginx_unified_routes": self.routes,
            "nginx_unified_models": self.models,
            "nginx_unified_api_keys": self.api_keys,
            "nginx_unified_drained": self.drained,
            "nginx_unified_retry_after": 7,
            "nginx_unified_ready_timeout": "1s",
            "nginx_unified_health_file": str(self.runtime / "health.json"),
        }


def render(variants: list[Variant], workdir: Path) -> None:
    """Render every variant with the role's own render tasks: one ansible-playbook run,
    one inventory host (connection local) per variant, so they render in parallel."""
    inventory = workdir / "variants.json"
    hosts = {v.name: v.as_vars() for v in variants}
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "--forks", str(len(variants)),
         str(ROOT / "tests" / "gateway" / "render.yml")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"render failed:\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")


def promote(variant: Variant) -> None:
    """Copy a staged variant into its runtime dir, as the role's promote step does."""
    for path in variant.staging.iterdir():
        if path.is_file() and path.name != "drained.json":
            (variant.runtime / path.name).write_bytes(path.read_bytes())


def drain(variant: Variant, names: list[str]) -> None:
    """Write the drained members where the router reads them, as the role's drain.yml does
    (an atomic rename; nothing is reloaded)."""
    tmp = variant.runtime / "drained.json.tmp"
    tmp.write_text(json.dumps({"drained": sorted(names)}) + "\n")
    tmp.rename(variant.runtime / "drained.json")


RELOAD_SH = ROOT / "roles/nginx_unified/files/reload.sh"
# The role's defaults: what a variant does not set
DEFAULTS: dict[str, Any] = yaml.safe_load((ROOT / "roles/nginx_unified/defaults/main.yml").read_text())


def standalone_conf(runtime: Path, http_body: str) -> str:
    """An nginx.conf of a test's own (not the role's), run from `runtime`: two workers, no
    access log, every temporary path inside `runtime`; `http_body` goes in its http block."""
    return f"""
pid {runtime}/nginx.pid;
worker_processes 2;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {runtime}/body;
    proxy_temp_path {runtime}/proxy;
    fastcgi_temp_path {runtime}/fastcgi;
    uwsgi_temp_path {runtime}/uwsgi;
    scgi_temp_path {runtime}/scgi;
{http_body}
}}
"""


def reload_sh(pid_file: Path, timeout: int, *nginx_args: str,
              quiesce: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run the role's reload handler script against an nginx on this machine (`quiesce`: the
    -q options, as the client side's handler passes them); raises on failure."""
    wait = int(quiesce[-1]) if quiesce else 0
    return subprocess.run(
        ["sh", str(RELOAD_SH), *quiesce, str(pid_file), str(timeout), *nginx_args],
        check=True, capture_output=True, text=True, timeout=wait + timeout + 10,
        env={**os.environ, "NGINX": NGINX},
    )


@dataclass
class Nginx:
    """One real nginx master (non-daemon, own prefix) running `conf` from `runtime`."""

    runtime: Path
    conf_name: str
    pid_name: str
    proc: subprocess.Popen[bytes]

    @property
    def conf(self) -> Path:
        return self.runtime / self.conf_name

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return {int(pid) for pid in children.split()}

    def reload(self, quiesce: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """The role's reload (files/reload.sh, with `quiesce` its -q options), then wait until
        every old worker has exited."""
        old = self.workers()
        done = reload_sh(self.runtime / self.pid_name, 10, "-p", str(self.runtime),
                         "-c", str(self.conf), quiesce=quiesce)
        wait_until(lambda: not (self.workers() & old) and bool(self.workers()), 10, "nginx reload")
        return done

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


@dataclass
class Gateway:
    """The gateway as the role runs it: the client side (nginx.conf) in front of the router
    (router.conf); a bare nginx.conf (no router.conf) runs alone."""

    runtime: Path
    port: int
    front: Nginx
    router: Nginx | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.front.proc

    @property
    def conf(self) -> Path:
        return self.front.conf

    def workers(self) -> set[int]:
        return self.front.workers()

    def reload(self) -> None:
        """A configuration change: the router reloads (routes, pools, keys, limits)."""
        (self.router or self.front).reload()

    def quiesce_options(self, wait: int | None = None) -> tuple[str, ...]:
        """reload.sh's -q options for the client side, as its handler passes them (the flag
        and the status port read from the rendered nginx.conf; `wait`: the role's
        nginx_unified_quiesce_timeout unless given)."""
        wait = DEFAULTS["nginx_unified_quiesce_timeout"] if wait is None else wait
        text = self.front.conf.read_text()
        flag = re.search(r"if \(-f (\S+)\) \{", text)
        status = re.search(r"listen ([^\s:]+):(\d+);\n\s+access_log off;\n"
                           r"\s+location = /_mx/connections", text)
        if flag is None or status is None:
            raise RuntimeError(f"{self.front.conf}: no closing flag or status server")
        return ("-q", flag[1], status[1], status[2], str(wait))

    def reload_front(self, quiesce: bool = True) -> subprocess.CompletedProcess[str]:
        """The client side reloads (its own file changed), quiesced as its handler does
        (`quiesce=False`: a bare reload)."""
        return self.front.reload(self.quiesce_options() if quiesce else ())

    def nginx_pids(self) -> list[int]:
        masters = [n for n in (self.front, self.router) if n is not None]
        return [pid for n in masters for pid in (n.proc.pid, *n.workers())]

    def access_log(self) -> list[dict[str, Any]]:
        path = self.runtime / "access.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> None:
        self.front.stop()
        if self.router is not None:
            self.router.stop()


def start_nginx(runtime: Path, conf_name: str, pid_name: str,
                ready: Callable[[], bool], what: str) -> Nginx:
    """nginx -t, then nginx in the foreground; waits until `ready`."""
    conf = str(runtime / conf_name)
    err = str(runtime / "error.log")
    test = subprocess.run(
        [NGINX, "-t", "-p", str(runtime), "-c", conf, "-e", err],
        capture_output=True, text=True, timeout=30, check=False,
    )
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {test.stderr}")
    with (runtime / f"{conf_name}.out").open("wb") as out:
        proc = subprocess.Popen(
            [NGINX, "-p", str(runtime), "-c", conf, "-e", err, "-g", "daemon off;"],
            stdout=out, stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {(runtime / 'error.log').read_text()[-2000:]}")
        return ready()

    wait_until(up, 15, what)
    return Nginx(runtime, conf_name, pid_name, proc)


def router_port(runtime: Path) -> int | None:
    """The router's loopback port, read from its rendered router.conf."""
    conf = runtime / "router.conf"
    if not conf.exists():
        return None
    listen = next(line for line in conf.read_text().splitlines()
                  if line.strip().startswith(f"listen {LOOPBACK}:"))
    return int(listen.strip().rstrip(";").rsplit(":", 1)[1])


def start_gateway(runtime: Path, port: int, health_port: int | None = None) -> Gateway:
    """The router (if rendered), then the client side; ready when /health answers through it
    (on `health_port`, the plain-HTTP port, if the client side serves TLS only elsewhere)."""
    router = None
    inner = router_port(runtime)
    if inner is not None:
        router = start_nginx(runtime, "router.conf", "router.pid",
                             lambda: is_up(inner, "/health"), f"router on port {inner}")
    check = health_port or port
    try:
        front = start_nginx(runtime, "nginx.conf", "nginx.pid",
                            lambda: is_up(check, "/health"), f"nginx on port {check}")
    except BaseException:
        if router is not None:
            router.stop()
        raise
    return Gateway(runtime, port, front, router)


# A standard 64-hex key, and one of 300 printable characters (every punctuation mark)
class Mute:
    """A backend that accepts connections and reads requests but never answers (a hung
    engine). Connections stay open until close()."""

    def __init__(self) -> None:
        self.sock = socket.create_server((LOOPBACK, 0), backlog=256)
        self.port: int = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for conn in self.held:
            conn.close()


API_KEYS = [
    {"name": "memoryx", "key": "sk-" + "0123456789abcdef" * 4},
    {"name": "batch", "key": ("Kx9!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" * 10)[:300]},
]

# Keys with policies (variant policy; tests/gateway/test_key_policy.py): one for embeddings only;
# one for the chat models; one for Llama at most 2 requests at once; one for Qwen at 1 request a
# minute (its burst is its concurrency: the qwen pool's capacity, 1); one with no policy (6 at
# once: every pool's capacity).
POLICY_CAPACITY = {"llama": 3, "qwen": 1, "bge": 2}
POLICY_KEYS = [
    {"name": "embedder", "key": "sk-embedder-" + "e" * 24, "models": ["bge-m3"]},
    {"name": "chat", "key": "sk-chat-" + "c" * 28, "models": ["llama3.1-8b", "qwen2.5-14b"]},
    {"name": "pair", "key": "sk-pair-" + "p" * 28, "models": ["llama3.1-8b"], "concurrency": 2},
    {"name": "rated", "key": "sk-rated-" + "r" * 27, "models": ["qwen2.5-14b"], "rate": "1r/m"},
    {"name": "whole", "key": "sk-whole-" + "w" * 27},
]
# A client that may call the policy variant without a key: a second loopback address
TRUSTED = [{"name": "lan-embedder", "networks": ["127.0.0.2/32"], "models": ["bge-m3"], "concurrency": 3}]


@dataclass
class Stack:
    sims: dict[str, Process]
    gateways: dict[str, Gateway]
    variants: dict[str, Variant]

    def port(self, gateway: str) -> int:
        return self.gateways[gateway].port

    def llama_total(self) -> float:
        return sum(success_total(self.sims[n].port) for n in ("llama-a", "llama-b"))

    def qwen_total(self) -> float:
        return success_total(self.sims["qwen-a"].port)
