"""Engine images as data (memoryx_engines): reading them, and the smoke runs built from them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.filters import FUNCTIONS
from memoryx_deploy.inputs.engines import read_engines
from memoryx_deploy.operate.smoke import smoke_commands, smoke_failures, smoke_passed, smoke_runs, smoke_todo

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
VLLM = {"engine": "vllm", "version": "0.19.1", "compute_capabilities": ["7.0", "8.0"],
        "min_driver": "525.60.13", "min_cuda": "12.0"}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def read(data: Any) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    return read_engines(problems, data), problems


def test_an_entry_is_read_with_its_flag_list() -> None:
    engines, problems = read({"img:1": {**VLLM, "compute_capabilities": [8.0, "7.0", "7.0"]}})
    assert problems == []
    engine = engines["img:1"]
    assert engine.compute_capabilities == ("7.0", "8.0")
    assert engine.flags is not None and engine.flags.version == "0.19.1"
    assert engine.runs_on("7.0") and not engine.runs_on("6.1")


def test_broken_entries_name_image_and_field() -> None:
    engines, problems = read({
        "a:1": {**VLLM, "engine": "tgi", "arch": ["7.0"]},
        "b:1": {**VLLM, "compute_capabilities": ["sm_70"]},
        "c:1": {**VLLM, "version": "0.0.1"},
        "d:1": {**VLLM, "compute_capabilities": []},
    })
    assert not any(engine.valid for engine in engines.values())
    assert problems == [
        "engines 'a:1': unknown key 'arch' (allowed: compute_capabilities, engine, min_cuda, "
        "min_driver, source, stand_in, version)",
        "engines 'a:1': engine must be one of vllm, ollama, got 'tgi'",
        "engines 'b:1': compute_capabilities entries must be like \"7.0\", got 'sm_70'",
        "engines 'c:1': vLLM 0.0.1 has no flag list (memoryx_deploy/data/vllm-flags-0.0.1.json); "
        "run scripts/vllm-flags 0.0.1",
        "engines 'd:1': compute_capabilities must list at least one compute capability",
    ]


def test_engines_that_are_not_a_mapping() -> None:
    assert read(["img:1"])[1] == ["engines: must be a mapping of image to engine, got a list"]


def test_smoke_runs_one_per_image_and_gpu(config: dict[str, Any]) -> None:
    stack = build_stack(config, ADDRESSES)
    runs = smoke_runs(stack, "mx-llm-01")
    image = config["images"]["vllm"]
    assert [(r["gpu"], r["image"], r["instances"]) for r in runs] == [
        (0, image, ["llama-gpu0-0", "llama-gpu0-1"]),
        (1, image, ["llama-gpu1-0", "llama-gpu1-1"]),
        (2, image, ["qwen-gpu2"])]
    first = runs[0]
    command = smoke_commands()["vllm"]
    assert first["docker_argv"] == ["docker", "run", "--rm", "--pull", "never", "--gpus", "device=0",
                                    "--entrypoint", "python3", image, *command["args"]]
    assert (first["engine"], first["compute_capability"], first["gpu_name"]) == (
        "vllm", "7.0", "Tesla V100-SXM2-32GB")
    embed = smoke_runs(stack, "mx-embed-01")
    assert [(r["gpu"], r["engine"], r["entrypoint"], r["compute_capability"]) for r in embed] == [
        (0, "ollama", "/bin/sh", "6.1"), (1, "ollama", "/bin/sh", "6.1")]


def test_an_instance_with_its_own_image_gets_its_own_run(config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][0][1]["image"] = "vllm/vllm-openai:v0.18.0"
    runs = smoke_runs(build_stack(config, ADDRESSES), "mx-llm-01")
    assert [(r["gpu"], r["image"], r["instances"]) for r in runs][:2] == [
        (0, "vllm/vllm-openai:v0.18.0", ["llama-gpu0-1"]),
        (0, config["images"]["vllm"], ["llama-gpu0-0"])]


def test_smoke_passes_on_exit_zero_and_the_expected_line(config: dict[str, Any]) -> None:
    run = smoke_runs(build_stack(config, ADDRESSES), "mx-llm-01")[0]
    assert smoke_passed(run, 0, "memoryx-smoke ok: Tesla V100-SXM2-32GB compute 7.0")
    assert not smoke_passed(run, 0, "")
    assert not smoke_passed(run, 1, "memoryx-smoke ok")


def test_the_filters_are_exposed(config: dict[str, Any]) -> None:
    stack = build_stack(copy.deepcopy(config), ADDRESSES)
    runs = FUNCTIONS["memoryx_smoke_runs"](stack, "mx-embed-01")
    assert len(runs) == 2
    assert FUNCTIONS["memoryx_gpu_check"](stack, "mx-embed-01", "", "")[0] == (
        "mx-embed-01: 2 GPUs declared (memoryx_gpu_hosts), nvidia-smi reports 0")


def running(gpu: str, image_id: str, state: str = "running") -> dict[str, Any]:
    return {"Labels": {"memoryx.gpu": gpu}, "ImageID": image_id, "State": state}


def test_smoke_only_what_no_running_instance_already_runs(config: dict[str, Any]) -> None:
    runs = smoke_runs(build_stack(config, ADDRESSES), "mx-llm-01")
    image = config["images"]["vllm"]
    images = [{"Id": "sha256:new", "RepoTags": [image], "RepoDigests": []}]
    # GPU 0 already runs this very image; GPU 1 runs an older build of the same tag; GPU 2's
    # container has exited.
    containers = [running("0", "sha256:new"), running("1", "sha256:old"),
                  running("2", "sha256:new", state="exited")]
    assert [r["gpu"] for r in smoke_todo(runs, containers, images)] == [1, 2]
    assert smoke_todo(runs, [running(str(g), "sha256:new") for g in (0, 1, 2)], images) == []
    # an image the host does not have yet is always tried
    assert [r["gpu"] for r in smoke_todo(runs, containers, [])] == [0, 1, 2]
    # a rolling restart of one instance tries its own (image, GPU) alone
    assert [r["gpu"] for r in smoke_todo(runs, [], images, ["llama-gpu1-1"])] == [1]


def test_smoke_failures_quote_the_image_and_name_everything(config: dict[str, Any]) -> None:
    run = smoke_runs(build_stack(config, ADDRESSES), "mx-llm-01")[2]
    error = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    results = [
        {"item": run, "rc": 1, "stdout": "", "stderr": f"Traceback (most recent call last):\n{error}"},
        {"item": run, "rc": 0, "stdout": "memoryx-smoke ok: Tesla V100-SXM2-32GB compute 7.0"},
        {"item": run, "skipped": True},
    ]
    assert smoke_failures(results) == [
        f"smoke run of image {run['image']} on mx-llm-01 GPU 2 (Tesla V100-SXM2-32GB, compute "
        "capability 7.0) for qwen-gpu2 failed (exit 1, no 'memoryx-smoke ok'); nothing was "
        "replaced, every running instance keeps serving. Its output:\n"
        f"Traceback (most recent call last):\n{error}"]
    assert smoke_failures([{"item": run, "rc": 0, "stdout": "fine"}])[0].startswith(
        f"smoke run of image {run['image']} on mx-llm-01 GPU 2")
