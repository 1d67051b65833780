"""Session fixtures: simulators on loopback, the role rendered by Ansible, real nginx.

Gateways (one nginx each, own prefix under tmp):
  base   every pool on the shared simulators, auth off
  auth   the same pools, two API keys
  kill   llama = kill-a + kill-b, qwen = kill-q: simulators the tests may SIGKILL
  limits the same pools with small limits (connections, rate, large bodies, timeouts)
  dead   llama on a closed port, qwen on a server that accepts and never answers
  hang   llama = llama-a + a member that accepts and never answers
  drain  the same pools as `base`; tests write its drained members (no reload)
  tls    the same pools, two API keys, TLS on its port (certificate issued by role gateway_tls
         from a site CA under tmp), plain HTTP on `tls_plain`
  policy the same pools with a capacity each, three keys with policies (models, concurrency, rate)
Each runs the client side (nginx.conf) in front of its router (router.conf).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import harness as h
from harness import API_KEYS, POLICY_CAPACITY, POLICY_KEYS, TRUSTED, Stack

from tests.portpick import free_port


def _start_sims(work: Path) -> dict[str, h.Process]:
    models_dir = work / "ollama-models"
    models_dir.mkdir()
    vllm = {
        "llama-a": h.VllmOptions("llama3.1-8b", ttft_ms=5.0, tpot_ms=25.0),
        "llama-b": h.VllmOptions("llama3.1-8b", ttft_ms=5.0, tpot_ms=25.0),
        "qwen-a": h.VllmOptions("qwen2.5-14b", ttft_ms=5.0, tpot_ms=25.0),
        "kill-a": h.VllmOptions("llama3.1-8b", ttft_ms=400.0, max_num_seqs=8),
        "kill-b": h.VllmOptions("llama3.1-8b", ttft_ms=400.0, max_num_seqs=8),
        "kill-q": h.VllmOptions("qwen2.5-14b"),
    }
    sims = {name: h.start_vllm(name, opts, work) for name, opts in vllm.items()}
    sims["bge-a"] = h.start_ollama("bge-a", models_dir, work)
    sims["bge-b"] = h.start_ollama("bge-b", models_dir, work)
    for name in vllm:
        h.await_vllm(sims[name])
    h.await_ollama(sims["bge-a"], pull=True)
    h.await_ollama(sims["bge-b"], pull=False)
    return sims


# Small limits, so that the tests can reach each one (the defaults are in defaults/main.yml)
LIMITS: dict[str, object] = {
    "nginx_unified_client_connections": 6,
    "nginx_unified_client_rate": "20r/s",
    "nginx_unified_client_burst": 20,
    "nginx_unified_large_body_threshold": 1_000_000,
    "nginx_unified_large_body_slots": 2,
    "nginx_unified_client_header_timeout": "1s",
    "nginx_unified_client_body_timeout": "1s",
    "nginx_unified_client_max_body_size": "8m",
    "nginx_unified_body_limits": {"vllm": "8m", "ollama": "1m"},
}


def _variants(work: Path, sims: dict[str, h.Process], mute_port: int) -> dict[str, h.Variant]:
    def pools(llama: list[str], qwen: list[str]) -> dict[str, object]:
        return {
            "llama": h.pool("vllm", "llama3.1-8b", [sims[n] for n in llama]),
            "qwen": h.pool("vllm", "qwen2.5-14b", [sims[n] for n in qwen]),
            "bge": h.pool("ollama", "bge-m3", [sims["bge-a"], sims["bge-b"]]),
        }

    shared = pools(["llama-a", "llama-b"], ["qwen-a"])

    def make(
        name: str, port: int, pools_: dict[str, object], runtime: Path | None = None,
        api_keys: tuple[dict[str, Any], ...] = (), drained: tuple[str, ...] = (),
        extra: dict[str, object] | None = None,
    ) -> h.Variant:
        staging = work / f"gw-{name}"
        return h.Variant(name, port, staging, runtime or staging, pools_,
                         list(api_keys), list(drained), extra=dict(extra or {}))

    # llama: a port nobody listens on (502); qwen: a server that accepts and never answers
    dead = {
        "llama": {"kind": "vllm", "models": ["llama3.1-8b"], "members": [
            {"name": "nobody", "host": "loopback", "address": h.LOOPBACK, "port": free_port()}]},
        "qwen": {"kind": "vllm", "models": ["qwen2.5-14b"], "members": [
            {"name": "mute", "host": "loopback", "address": h.LOOPBACK, "port": mute_port}]},
        "bge": shared["bge"],
    }
    # llama: one healthy member and one that accepts connections and never answers
    hang = {**shared, "llama": {"kind": "vllm", "models": ["llama3.1-8b"], "members": [
        h.member(sims["llama-a"]),
        {"name": "hung", "host": "loopback", "address": h.LOOPBACK, "port": mute_port}]}}

    return {
        # base also sends its metrics lines (issue 12) to a socket test_gateway_metrics.py binds
        "base": make("base", free_port(), shared,
                     extra={"nginx_unified_metrics_socket_dir": str(work / "metrics")}),
        # auth sends its metrics lines to a socket nobody binds (mtail down): each request's
        # failed send is a warning in the error log, which quotes the request line
        "auth": make("auth", free_port(), shared, api_keys=tuple(API_KEYS),
                     extra={"nginx_unified_metrics_socket_dir": str(work / "metrics-down")}),
        "kill": make("kill", free_port(), pools(["kill-a", "kill-b"], ["kill-q"])),
        "limits": make("limits", free_port(), shared, extra=LIMITS),
        "dead": make("dead", free_port(), dead, extra={"nginx_unified_proxy_read_timeout": "1s"}),
        "hang": make("hang", free_port(), hang),
        "drain": make("drain", free_port(), shared),
        # keys with policies (issue 21), over pools whose capacity the data gives
        "policy": make("policy", free_port(), {
            name: {**pool, "capacity": POLICY_CAPACITY[name]} for name, pool in shared.items()  # type: ignore[dict-item]
        }, api_keys=tuple(POLICY_KEYS), extra={"nginx_unified_trusted_clients": TRUSTED,
                                                "nginx_unified_metrics_socket_dir": str(work / "metrics-policy")}),
        "tls": make("tls", free_port(), shared, api_keys=tuple(API_KEYS), extra={
            "nginx_unified_tls": True,
            "nginx_unified_http_port": free_port(),
            "nginx_unified_tls_site_ca": {"dir": str(work / "pki"), "names": TLS_NAMES},
        }),
    }


# The names of the loopback gateway's certificate (what clients connect to)
TLS_NAMES = ["localhost", h.LOOPBACK]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("gateway")
    sims = _start_sims(work)
    mute = h.Mute()
    gateways: dict[str, h.Gateway] = {}
    try:
        variants = _variants(work, sims, mute.port)
        h.render(list(variants.values()), work)
        for name in ("base", "auth", "kill", "limits", "dead", "hang", "drain", "policy"):
            gateways[name] = h.start_gateway(variants[name].runtime, variants[name].port)
        tls = variants["tls"]
        gateways["tls"] = h.start_gateway(tls.runtime, tls.port,
                                          health_port=int(tls.extra["nginx_unified_http_port"]))
        yield Stack(sims, gateways, variants)
    finally:
        for gateway in gateways.values():
            gateway.stop()
        for sim in sims.values():
            sim.stop()
        mute.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here is the gateway tier (real nginx on loopback + simulators)."""
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.gateway)
