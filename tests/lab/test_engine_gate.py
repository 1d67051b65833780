"""Engines on the GPUs the lab hosts really have: the compatibility gate, the smoke run and the
GPU facts stop a deploy or a rolling restart before any container is touched (issue 8)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from labkit import EMBED_HOST, GATEWAY_URL, LLM_HOST, ROOT, containers, on_host, run_playbook

from tests.traffic import Traffic

DATA = yaml.safe_load((ROOT / "group_vars/all/memoryx.yml").read_text())
# vLLM 0.20.0's image (CUDA 13, no compute 7.0 kernels): the lab registry holds the simulator
# built like it under production's name (lab/lab.sh), which the hosts pull from the registry.
NO_SM70 = "vllm/vllm-openai:v0.20.0"
PULLED = f"10.99.0.6:5000/{NO_SM70}"
GPU_TABLE = "/etc/nvidia-sim/gpus.json"




def no_sm70_images() -> dict[str, Any]:
    return {"memoryx_images": {**DATA["memoryx_images"], "vllm": NO_SM70}}


def claims_sm70() -> dict[str, Any]:
    """Engine data that wrongly says the no-sm70 build runs on 7.0 (and on the lab's driver):
    the preflight and the driver check let it through, so only the smoke run, which asks the
    image itself, can catch it."""
    engines = json.loads(json.dumps(DATA["memoryx_engines"]))
    engines[NO_SM70]["compute_capabilities"] = ["7.0", *engines[NO_SM70]["compute_capabilities"]]
    engines[NO_SM70].update(min_driver="525.60.13", min_cuda="12.0")
    return {**no_sm70_images(), "memoryx_engines": engines}


def test_a_build_without_sm70_is_refused_before_any_container(deployed: None, tmp_path: Path) -> None:
    before = containers()
    run = run_playbook("site.yml", tmp_path, extravars=no_sm70_images())
    assert run.rc != 0
    message = " ".join(run.failures())
    assert (f"vllm instance 'llama-gpu0-0': image '{NO_SM70}' runs on compute capability 7.5, 8.0, "
            "8.6, 8.9, 9.0, 10.0, 11.0, 12.0 (memoryx_engines), but mx-llm-01 GPU 0 "
            "(Tesla V100-SXM2-32GB) has compute capability 7.0") in message
    assert containers() == before


def test_the_smoke_run_catches_what_the_data_got_wrong(deployed: None, tmp_path: Path) -> None:
    before = containers()
    run = run_playbook("site.yml", tmp_path, extravars=claims_sm70())
    assert run.rc != 0
    message = " ".join(run.failures())
    assert f"smoke run of image {PULLED} on mx-llm-01 GPU 0 (Tesla V100-SXM2-32GB, compute " \
           "capability 7.0) for llama-gpu0-0, llama-gpu0-1 failed" in message
    assert "no kernel image is available for execution on the device" in message
    assert containers() == before


def test_a_rolling_restart_to_that_build_stops_before_draining(
    deployed: None, api_key: str, tmp_path: Path
) -> None:
    before = containers()
    with Traffic(f"{GATEWAY_URL}/v1", api_key, "llama3.1-8b") as traffic:
        run = run_playbook("playbooks/restart_vllm.yml", tmp_path,
                           extravars={**claims_sm70(), "vllm_restart": "llama-gpu0-1"})
    assert run.rc != 0
    message = " ".join(run.failures())
    assert "no kernel image is available for execution on the device" in message
    assert traffic.tally.sent > 0 and traffic.tally.failed == 0, traffic.tally.errors[:5]
    assert containers() == before
    # nothing was drained: the gateway's drained members (read at request time) name none
    drained = on_host(EMBED_HOST, "cat /var/lib/memoryx/gateway/drained.json").stdout
    assert "llama-gpu0-1" not in drained


@pytest.fixture
def another_gpu() -> Iterator[None]:
    """The lab's LLM host reports a T4 16 GB as its GPU 2 (the data says a V100 32 GB)."""
    table = json.loads(on_host(LLM_HOST, f"cat {GPU_TABLE}").stdout)
    changed = json.loads(json.dumps(table))
    changed["gpus"][2].update({"name": "Tesla T4", "memory_total_mib": 15360, "compute_cap": "7.5"})
    on_host(LLM_HOST, f"cp {GPU_TABLE} {GPU_TABLE}.good && echo {json.dumps(json.dumps(changed))} > {GPU_TABLE}")
    try:
        yield
    finally:
        on_host(LLM_HOST, f"mv {GPU_TABLE}.good {GPU_TABLE}")


def test_a_gpu_unlike_the_data_stops_the_run_before_changes(
    deployed: None, another_gpu: None, tmp_path: Path
) -> None:
    before = containers()
    run = run_playbook("site.yml", tmp_path)
    assert run.rc != 0
    message = " ".join(run.failures())
    assert "mx-llm-01 GPU 2: model expected 'Tesla V100-SXM2-32GB', found 'Tesla T4'" in message
    assert "mx-llm-01 GPU 2: memory expected 32 GiB" in message and "found 15360 MiB" in message
    assert "mx-llm-01 GPU 2: compute capability expected 7.0, found 7.5" in message
    assert containers() == before
