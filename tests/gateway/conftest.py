"""Session fixtures: simulators on loopback, the role rendered by Ansible, real nginx.

Gateways (one nginx each, own prefix under tmp):
  base   every pool on the shared simulators, auth off
  auth   the same pools, two API keys
  kill   llama = kill-a + kill-b, qwen = kill-q: simulators the tests may SIGKILL
  drain  starts as `base`; tests promote the staged `drain_one` / `drain_all` and reload
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import harness as h
from harness import API_KEYS, Stack

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


def _variants(work: Path, sims: dict[str, h.Process]) -> dict[str, h.Variant]:
    def pools(llama: list[str], qwen: list[str]) -> dict[str, object]:
        return {
            "llama": h.pool("vllm", "llama3.1-8b", [sims[n] for n in llama]),
            "qwen": h.pool("vllm", "qwen2.5-14b", [sims[n] for n in qwen]),
            "bge": h.pool("ollama", "bge-m3", [sims["bge-a"], sims["bge-b"]]),
        }

    shared = pools(["llama-a", "llama-b"], ["qwen-a"])
    drain_dir = work / "gw-drain"
    drain_port = free_port()

    def make(
        name: str, port: int, pools_: dict[str, object], runtime: Path | None = None,
        api_keys: tuple[str, ...] = (), drained: tuple[str, ...] = (),
    ) -> h.Variant:
        staging = work / f"gw-{name}"
        return h.Variant(name, port, staging, runtime or staging, pools_,
                         list(api_keys), list(drained))

    return {
        "base": make("base", free_port(), shared),
        "auth": make("auth", free_port(), shared, api_keys=tuple(API_KEYS)),
        "kill": make("kill", free_port(), pools(["kill-a", "kill-b"], ["kill-q"])),
        "drain": make("drain", drain_port, shared),
        "drain_one": make("drain_one", drain_port, shared, drain_dir, drained=("llama-b",)),
        "drain_all": make("drain_all", drain_port, shared, drain_dir, drained=("qwen-a",)),
    }


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("gateway")
    sims = _start_sims(work)
    gateways: dict[str, h.Gateway] = {}
    try:
        variants = _variants(work, sims)
        h.render(list(variants.values()), work)
        for name in ("base", "auth", "kill", "drain"):
            gateways[name] = h.start_gateway(variants[name].runtime, variants[name].port)
        yield Stack(sims, gateways, variants)
    finally:
        for gateway in gateways.values():
            gateway.stop()
        for sim in sims.values():
            sim.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything here is the gateway tier (real nginx on loopback + simulators)."""
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.gateway)
