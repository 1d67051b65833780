"""Every broken layout is refused with a message naming the item and the field.

Each test starts from the production data, breaks one thing, and asserts the exact problems.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import StackError, build_stack
from memoryx_deploy.__main__ import load_config

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def problems(config: Any, addresses: Any = ADDRESSES) -> list[str]:
    with pytest.raises(StackError) as caught:
        build_stack(config, addresses)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def llm_gpu(config: dict[str, Any], index: int) -> list[Any]:
    return config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][index]  # type: ignore[no-any-return]


def embed_gpu(config: dict[str, Any], index: int) -> list[Any]:
    return config["gpu_hosts"]["mx-embed-01"]["ollama_instances"][index]  # type: ignore[no-any-return]


def profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    return config["vllm_profiles"][name]  # type: ignore[no-any-return]


# --- GPU memory -------------------------------------------------------------------------------

def test_utilization_over_the_limit_on_one_gpu(config: dict[str, Any]) -> None:
    llm_gpu(config, 0).append({"name": "llama-gpu0-2", "profile": "llama3.1-8b", "port": 11406})
    assert problems(config) == [
        "mx-llm-01 GPU 0: gpu_memory_utilization sums to 1.35 (llama-gpu0-0 0.45, "
        "llama-gpu0-1 0.45, llama-gpu0-2 0.45), over the limit 0.95"]


def test_limit_given_as_a_templated_string_applies(config: dict[str, Any]) -> None:
    config["gpu_utilization_limit"] = "0.85"
    assert problems(config) == [
        "mx-llm-01 GPU 0: gpu_memory_utilization sums to 0.90 (llama-gpu0-0 0.45, "
        "llama-gpu0-1 0.45), over the limit 0.85",
        "mx-llm-01 GPU 1: gpu_memory_utilization sums to 0.90 (llama-gpu1-0 0.45, "
        "llama-gpu1-1 0.45), over the limit 0.85"]


def test_ollama_memory_counts_in_the_share_of_a_shared_gpu(config: dict[str, Any]) -> None:
    config["ollama"]["memory_gib"] = 3.2  # 0.10 of a 32 GiB V100
    config["gpu_hosts"]["mx-llm-01"]["ollama_instances"] = {2: [{"name": "bge-v100",
                                                                 "port": 11434}]}
    config["gateway"]["routes"].append({"path": "/llm-embed/", "pool": "bge"})
    assert build_stack(config, ADDRESSES)["pools"]["bge"]["members"][0]["name"] == "bge-v100"
    config["ollama"]["memory_gib"] = 6.4  # 0.20
    assert problems(config) == [
        "mx-llm-01 GPU 2: gpu_memory_utilization sums to 1.05 (qwen-gpu2 0.85, "
        "bge-v100 0.20), over the limit 0.95"]


def test_estimate_over_the_card(config: dict[str, Any]) -> None:
    config["ollama"]["memory_gib"] = 30
    assert problems(config) == [
        "mx-embed-01 GPU 0: estimated memory 30.0 GiB (bge-gpu0 30.0) exceeds the card's "
        "24 GiB (Tesla P40)",
        "mx-embed-01 GPU 1: estimated memory 30.0 GiB (bge-gpu1 30.0) exceeds the card's "
        "24 GiB (Tesla P40)"]


def test_reservation_too_small_for_one_full_sequence(config: dict[str, Any]) -> None:
    llm_gpu(config, 2)[0]["args"] = {"gpu_memory_utilization": 0.55}
    assert problems(config) == [
        "vllm instance 'qwen-gpu2' (mx-llm-01 GPU 2): gpu_memory_utilization 0.55 reserves "
        "17.6 GiB of 32 GiB, less than the 20.5 GiB it needs (weights 16.0 + overhead 1.5 + "
        "KV of one 16384-token sequence 3.0); vLLM would refuse to start"]


# --- placement, ports, names ------------------------------------------------------------------

def test_instances_on_a_gpu_the_host_does_not_have(config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][3] = [
        {"name": "qwen-gpu3", "profile": "qwen2.5-14b", "port": 11406}]
    assert problems(config) == [
        "mx-llm-01: vllm_instances names GPU 3, but the host's gpus are 0, 1, 2"]


def test_gpu_index_key_that_is_not_a_number(config: dict[str, Any]) -> None:
    instances = config["gpu_hosts"]["mx-embed-01"]["ollama_instances"]
    instances["gpu1"] = instances.pop(1)
    assert problems(config) == [
        "mx-embed-01: ollama_instances key 'gpu1' must be a GPU index (an integer)"]


def test_two_vllm_instances_share_a_port(config: dict[str, Any]) -> None:
    llm_gpu(config, 1)[0]["port"] = 11401
    assert problems(config) == [
        "mx-llm-01: port 11401 is used by both vllm instance 'llama-gpu0-0' and "
        "vllm instance 'llama-gpu1-0'"]


def test_an_ollama_instance_takes_the_gateway_port(config: dict[str, Any]) -> None:
    embed_gpu(config, 0)[0]["port"] = 11436
    assert problems(config) == [
        "mx-embed-01: port 11436 is used by both ollama instance 'bge-gpu0' and the gateway"]


def test_an_instance_name_used_twice_on_one_host(config: dict[str, Any]) -> None:
    llm_gpu(config, 2)[0]["name"] = "llama-gpu0-0"
    assert problems(config) == [
        "instance name 'llama-gpu0-0' is used twice: vllm instance on mx-llm-01 GPU 0 and "
        "vllm instance on mx-llm-01 GPU 2"]


def test_an_instance_name_used_by_both_kinds(config: dict[str, Any]) -> None:
    embed_gpu(config, 1)[0]["name"] = "qwen-gpu2"
    assert problems(config) == [
        "instance name 'qwen-gpu2' is used twice: vllm instance on mx-llm-01 GPU 2 and "
        "ollama instance on mx-embed-01 GPU 1"]


# --- pools and routes -------------------------------------------------------------------------

def test_route_to_a_pool_without_backend(config: dict[str, Any]) -> None:
    del config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][2]
    assert problems(config) == ["gateway route '/qwen/': pool 'qwen' has no backend"]


def test_route_to_an_unknown_pool(config: dict[str, Any]) -> None:
    config["gateway"]["routes"][6]["pool"] = "qwen3"
    assert problems(config) == [
        "gateway route '/qwen/': pool 'qwen3' is not a pool (pools: bge, llama, qwen)"]


def test_route_with_neither_pool_nor_route_by_model(config: dict[str, Any]) -> None:
    config["gateway"]["routes"].append({"path": "/v1/models"})
    assert problems(config) == [
        "gateway route '/v1/models': needs a pool or route_by_model: true"]


def test_route_with_both_pool_and_route_by_model(config: dict[str, Any]) -> None:
    config["gateway"]["routes"][5]["route_by_model"] = True
    assert problems(config) == [
        "gateway route '/llama/': sets both pool and route_by_model; choose one"]


def test_route_with_an_unknown_key(config: dict[str, Any]) -> None:
    config["gateway"]["routes"][2] = {"path": "/embed/", "pool": "bge", "strip_prefx": True}
    assert problems(config) == [
        "gateway route '/embed/': unknown key 'strip_prefx' (allowed: exact, path, pool, "
        "route_by_model, strip_prefix)"]


def test_route_path_listed_twice_and_strip_on_an_exact_path(config: dict[str, Any]) -> None:
    config["gateway"]["routes"] += [{"path": "/llama/", "pool": "llama"},
                                    {"path": "/v1/models", "pool": "llama", "strip_prefix": True}]
    assert problems(config) == [
        "gateway route '/llama/': the path is listed twice",
        "gateway route '/v1/models': strip_prefix needs a path ending with '/'"]


def test_vllm_model_reached_by_no_route(config: dict[str, Any]) -> None:
    config["gateway"]["routes"] = [r for r in config["gateway"]["routes"]
                                   if not r.get("route_by_model") and r["path"] != "/qwen/"]
    assert problems(config) == [
        "served model 'qwen2.5-14b' (pool 'qwen') is reached by no gateway route"]


def test_embedding_model_is_not_reached_by_model_routing(config: dict[str, Any]) -> None:
    config["gateway"]["routes"] = [r for r in config["gateway"]["routes"]
                                   if r.get("pool") != "bge"]
    assert problems(config) == [
        "served model 'bge-m3' (pool 'bge') is reached by no gateway route"]


def test_pool_serving_two_models(config: dict[str, Any]) -> None:
    profile(config, "qwen2.5-14b")["pool"] = "llama"
    assert problems(config) == [
        "pool 'llama' serves two models: llama3.1-8b (vllm profile 'llama3.1-8b') and "
        "qwen2.5-14b (vllm profile 'qwen2.5-14b')"]


def test_pool_mixing_vllm_and_ollama(config: dict[str, Any]) -> None:
    profile(config, "llama3.1-8b")["pool"] = "bge"
    assert problems(config) == [
        "pool 'bge' mixes kinds: vllm profile 'llama3.1-8b' (vllm) and the ollama service "
        "(ollama)"]


def test_model_served_by_two_pools(config: dict[str, Any]) -> None:
    profile(config, "qwen2.5-14b")["served_model_name"] = "llama3.1-8b"
    assert problems(config) == [
        "served model 'llama3.1-8b' is served by two pools: 'llama' (vllm profile "
        "'llama3.1-8b') and 'qwen' (vllm profile 'qwen2.5-14b')"]


# --- types, names, keys -----------------------------------------------------------------------

def test_port_that_is_not_an_integer(config: dict[str, Any]) -> None:
    llm_gpu(config, 0)[0]["port"] = "abc"
    assert problems(config) == ["vllm instance 'llama-gpu0-0': port must be an integer, got 'abc'"]


@pytest.mark.parametrize(("port", "shown"), [(0, "0"), (70000, "70000")])
def test_port_out_of_range(config: dict[str, Any], port: int, shown: str) -> None:
    embed_gpu(config, 0)[0]["port"] = port
    assert problems(config) == [
        f"ollama instance 'bge-gpu0': port must be between 1 and 65535, got {shown}"]


def test_boolean_is_not_a_port(config: dict[str, Any]) -> None:
    llm_gpu(config, 0)[0]["port"] = True
    assert problems(config) == ["vllm instance 'llama-gpu0-0': port must be an integer, got true"]


def test_profile_field_of_the_wrong_type(config: dict[str, Any]) -> None:
    profile(config, "llama3.1-8b")["weights_gib"] = "big"
    assert problems(config) == [
        "vllm profile 'llama3.1-8b': weights_gib must be a number, got 'big'"]


def test_profile_arg_of_the_wrong_type(config: dict[str, Any]) -> None:
    profile(config, "qwen2.5-14b")["args"]["gpu_memory_utilization"] = "0.85"
    profile(config, "llama3.1-8b")["args"]["max_model_len"] = 8192.5
    assert problems(config) == [
        "vllm profile 'llama3.1-8b': args.max_model_len must be a positive integer, got 8192.5",
        "vllm profile 'qwen2.5-14b': args.gpu_memory_utilization must be a number greater "
        "than 0 and at most 1, got '0.85'"]


def test_profile_missing_a_field(config: dict[str, Any]) -> None:
    del profile(config, "qwen2.5-14b")["kv_cache_kib_per_token"]
    assert problems(config) == ["vllm profile 'qwen2.5-14b': kv_cache_kib_per_token is required"]


def test_utilization_set_nowhere(config: dict[str, Any]) -> None:
    del profile(config, "qwen2.5-14b")["args"]["gpu_memory_utilization"]
    assert problems(config) == [
        "vllm instance 'qwen-gpu2': args.gpu_memory_utilization is set neither by profile "
        "'qwen2.5-14b' nor here"]


def test_gpu_entry_of_the_wrong_type(config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-llm-01"]["gpus"][1]["memory_gib"] = "32GB"
    assert problems(config) == ["mx-llm-01 gpus[1]: memory_gib must be a number, got '32GB'"]


def test_gpu_entry_name_and_index(config: dict[str, Any]) -> None:
    gpus = config["gpu_hosts"]["mx-embed-01"]["gpus"]
    gpus[0]["name"] = 40
    gpus[1]["index"] = 0
    assert problems(config) == [
        "mx-embed-01 gpus[0]: name must be a non-empty string, got 40",
        "mx-embed-01 gpus[1]: index 0 is listed twice",
        "mx-embed-01: ollama_instances names GPU 1, but the host's gpus are 0"]


def test_unknown_profile(config: dict[str, Any]) -> None:
    llm_gpu(config, 2)[0]["profile"] = "qwen3"
    assert problems(config) == [
        "vllm instance 'qwen-gpu2': profile 'qwen3' is not a vllm profile "
        "(profiles: llama3.1-8b, qwen2.5-14b)"]


def test_a_broken_profile_is_reported_once(config: dict[str, Any]) -> None:
    profile(config, "qwen2.5-14b")["pool"] = "Qwen"
    assert problems(config) == [
        "vllm profile 'qwen2.5-14b': pool must match ^[a-z][a-z0-9-]*$, got 'Qwen'"]


def test_unknown_instance_key(config: dict[str, Any]) -> None:
    llm_gpu(config, 0)[0]["prot"] = 11409
    assert problems(config) == [
        "vllm instance 'llama-gpu0-0': unknown key 'prot' (allowed: args, env, image, name, "
        "port, profile)"]


def test_unknown_keys_of_hosts_and_ollama(config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-embed-01"]["olama_instances"] = {}
    config["ollama"]["memory"] = 1
    assert problems(config) == [
        "ollama: unknown key 'memory' (allowed: embedding_dim, env, memory_gib, model, pool)",
        "mx-embed-01: unknown key 'olama_instances' (allowed: gpus, ollama_instances, "
        "vllm_instances)"]


def test_instance_name_pattern(config: dict[str, Any]) -> None:
    llm_gpu(config, 0)[0]["name"] = "Llama_0"
    assert problems(config) == [
        "vllm instance 'Llama_0': name must match ^[a-z0-9][a-z0-9-]*$, got 'Llama_0'"]


def test_instance_without_a_name(config: dict[str, Any]) -> None:
    del embed_gpu(config, 1)[0]["name"]
    assert problems(config) == ["ollama instance #0 on mx-embed-01 GPU 1: name is required"]


def test_instance_that_is_not_a_mapping(config: dict[str, Any]) -> None:
    llm_gpu(config, 1)[1] = "llama-gpu1-1"
    assert problems(config) == [
        "vllm instance #1 on mx-llm-01 GPU 1: must be a mapping, got 'llama-gpu1-1'"]


@pytest.mark.parametrize("key", ["model", "served_model_name", "port", "host"])
def test_args_owned_by_the_tool_are_refused(config: dict[str, Any], key: str) -> None:
    llm_gpu(config, 2)[0]["args"] = {key: "x"}
    hints = {
        "model": "set model_path in the profile",
        "served_model_name": "set served_model_name in the profile",
        "port": "set the instance's port; the container listens on 8000",
        "host": "the container listens on all its interfaces; the published address is "
                "computed",
    }
    assert problems(config) == [
        f"vllm instance 'qwen-gpu2': args.{key} is owned by memoryx-deploy ({hints[key]}); "
        "remove it"]


def test_dashed_owned_arg_in_a_profile(config: dict[str, Any]) -> None:
    profile(config, "llama3.1-8b")["args"]["served-model-name"] = "llama"
    assert problems(config) == [
        "vllm profile 'llama3.1-8b': args.served-model-name is owned by memoryx-deploy "
        "(set served_model_name in the profile); remove it"]


def test_arg_value_of_an_unsupported_type(config: dict[str, Any]) -> None:
    llm_gpu(config, 2)[0]["args"] = {"allowed_origins": ["a", "b"]}
    assert problems(config) == [
        "vllm instance 'qwen-gpu2': args.allowed_origins must be a string, number, boolean, "
        "null or mapping, got a list"]


def test_env_values_must_be_scalars(config: dict[str, Any]) -> None:
    config["ollama"]["env"]["OLLAMA_DEBUG"] = True
    config["vllm_env"]["bad name"] = "1"
    assert problems(config) == [
        "memoryx_config: vllm_env name 'bad name' must match ^[A-Za-z_][A-Za-z0-9_]*$",
        "ollama: env.OLLAMA_DEBUG must be a string or a number, got true"]


def test_unpinned_images(config: dict[str, Any]) -> None:
    config["images"]["vllm"] = "vllm/vllm-openai:latest"
    embed_gpu(config, 0)[0]["image"] = "registry.local:5000/ollama"
    embed_gpu(config, 1)[0]["image"] = "ollama/ollama@sha256:1234"
    digest = "(name@sha256:<64 hex digits>)"
    assert problems(config) == [
        "images: vllm 'vllm/vllm-openai:latest' must be pinned by a tag other than latest, "
        f"or a digest {digest}",
        "ollama instance 'bge-gpu0': image 'registry.local:5000/ollama' must be pinned by a "
        f"tag other than latest, or a digest {digest}",
        "ollama instance 'bge-gpu1': image 'ollama/ollama@sha256:1234' must be pinned by a "
        f"tag other than latest, or a digest {digest}"]


# --- settings and inventory -------------------------------------------------------------------

def test_limit_that_is_not_a_number(config: dict[str, Any]) -> None:
    config["gpu_utilization_limit"] = "abc"
    config["vllm_overhead_gib"] = -1
    assert problems(config) == [
        "memoryx_config: gpu_utilization_limit must be a number, got 'abc'",
        "memoryx_config: vllm_overhead_gib must be at least 0, got -1"]


def test_missing_and_unknown_settings(config: dict[str, Any]) -> None:
    del config["images"]
    config["vllm_models_dir"] = "models"
    config["gpu_host"] = {}
    assert problems(config) == [
        "memoryx_config: unknown key 'gpu_host' (allowed: containers, engines, extra_engines, gateway, gpu_hosts, "
        "gpu_utilization_limit, images, monitoring, ollama, ollama_models_dir, registry, vllm_env, "
        "vllm_models_dir, vllm_overhead_gib, vllm_profiles)",
        "memoryx_config: images is required",
        "memoryx_config: vllm_models_dir must be an absolute path, got 'models'"]


def test_config_that_is_not_a_mapping() -> None:
    assert problems(["gpu_hosts"]) == ["memoryx_config: must be a mapping, got a list"]


def test_gateway_host_not_in_the_inventory(config: dict[str, Any]) -> None:
    config["gateway"]["host"] = "mx-gw-01"
    assert problems(config) == [
        "gateway: host 'mx-gw-01' is not in the inventory (hosts: mx-embed-01, mx-llm-01)"]


def test_gateway_on_a_host_without_gpus_is_fine(config: dict[str, Any]) -> None:
    config["gateway"]["host"] = "mx-gw-01"
    stack = build_stack(config, {**ADDRESSES, "mx-gw-01": "192.168.31.70"})
    assert stack["gateway"]["address"] == "192.168.31.70"
    assert stack["pools"]["bge"]["members"][0]["address"] == "192.168.31.65"


def test_gpu_host_without_an_address(config: dict[str, Any]) -> None:
    assert problems(config, {"mx-llm-01": "", "mx-embed-01": "192.168.31.65"}) == [
        "mx-llm-01: no address (ansible_host) in the inventory"]
    assert problems(config, {"mx-llm-01": "192.168.31.10"}) == [
        "gateway: host 'mx-embed-01' is not in the inventory (hosts: mx-llm-01)",
        "mx-embed-01: no address (ansible_host) in the inventory"]


def test_every_problem_is_reported_at_once(config: dict[str, Any]) -> None:
    llm_gpu(config, 0)[0]["port"] = "abc"
    profile(config, "llama3.1-8b")["weights_gib"] = "big"
    embed_gpu(config, 1)[0]["prot"] = 1
    config["gateway"]["port"] = "11436"
    assert problems(config) == [
        "vllm profile 'llama3.1-8b': weights_gib must be a number, got 'big'",
        "gateway: port must be an integer, got '11436'",
        "vllm instance 'llama-gpu0-0': port must be an integer, got 'abc'",
        "ollama instance 'bge-gpu1': unknown key 'prot' (allowed: env, image, name, port)"]


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [path] + [p for key, value in data.items() for p in _leaves(value, (*path, key))]
    if isinstance(data, list):
        return [path] + [p for i, value in enumerate(data) for p in _leaves(value, (*path, i))]
    return [path]


@pytest.mark.parametrize("junk", [None, "x", -1, 0.5, True, [], {}, {"a": [1]}])
def test_junk_anywhere_gives_stack_error_or_a_stack(config: dict[str, Any], junk: Any) -> None:
    """No input makes build_stack fail with anything but StackError."""
    refusals: list[list[str]] = []
    for path in _leaves(config)[1:]:
        broken = copy.deepcopy(config)
        parent = broken
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = junk
        try:
            build_stack(broken, ADDRESSES)
        except StackError as error:
            refusals.append(error.problems)
    assert len(refusals) > 50
    assert all(lines for lines in refusals)
    assert all(line and "\n" not in line for lines in refusals for line in lines)


# --- engines: compute capability gate and vLLM's real flags (issue 8) -------------------------

def test_an_image_without_compute_7_0_is_refused_on_the_v100s(config: dict[str, Any]) -> None:
    config["images"]["vllm"] = "vllm/vllm-openai:v0.20.0"
    found = problems(config)
    assert len(found) == 5
    assert found[0] == (
        "vllm instance 'llama-gpu0-0': image 'vllm/vllm-openai:v0.20.0' runs on compute "
        "capability 7.5, 8.0, 8.6, 8.9, 9.0, 10.0, 11.0, 12.0 (memoryx_engines), but mx-llm-01 "
        "GPU 0 (Tesla V100-SXM2-32GB) has compute capability 7.0")
    assert [line.split("'")[1] for line in found] == [
        "llama-gpu0-0", "llama-gpu0-1", "llama-gpu1-0", "llama-gpu1-1", "qwen-gpu2"]


def test_an_ollama_build_without_pascal_is_refused_on_the_p40s(config: dict[str, Any]) -> None:
    config["engines"]["ollama/ollama:0.13.0"]["compute_capabilities"] = ["7.5", "8.0", "9.0"]
    assert problems(config) == [
        f"ollama instance 'bge-gpu{i}': image 'ollama/ollama:0.13.0' runs on compute capability "
        f"7.5, 8.0, 9.0 (memoryx_engines), but mx-embed-01 GPU {i} (Tesla P40) has compute "
        "capability 6.1" for i in (0, 1)]


def test_an_image_not_described_is_refused_once(config: dict[str, Any]) -> None:
    config["images"]["vllm"] = "vllm/vllm-openai:v0.21.0"
    assert problems(config) == [
        "engines: image 'vllm/vllm-openai:v0.21.0' (vllm instances llama-gpu0-0, llama-gpu0-1, "
        "llama-gpu1-0, llama-gpu1-1, qwen-gpu2) is not in memoryx_engines; describe the compute "
        "capabilities, driver and version it has (docs/engines.md)"]


def test_an_image_of_the_other_engine(config: dict[str, Any]) -> None:
    llm_gpu(config, 2)[0]["image"] = "ollama/ollama:0.13.0"
    assert problems(config) == [
        "vllm instance 'qwen-gpu2': image 'ollama/ollama:0.13.0' is a ollama engine in "
        "memoryx_engines, not a vllm one"]


def test_a_gpu_of_unknown_capability_needs_it_declared(config: dict[str, Any]) -> None:
    gpus = config["gpu_hosts"]["mx-llm-01"]["gpus"]
    gpus[2]["name"] = "NVIDIA RTX 9999"
    gpus[1]["compute_capability"] = "seven"
    assert problems(config) == [
        "mx-llm-01 gpus[1]: compute_capability must be like \"7.0\", got 'seven'",
        "mx-llm-01 gpus[2]: the compute capability of 'NVIDIA RTX 9999' is not known; set "
        "compute_capability (nvidia-smi --query-gpu=compute_cap prints it)"]
    gpus[1]["compute_capability"] = "7.0"
    gpus[2]["compute_capability"] = "8.9"
    assert build_stack(config, ADDRESSES)["hosts"]["mx-llm-01"]["gpus"][2]["name"] == (
        "NVIDIA RTX 9999")


def test_an_args_typo_is_refused_with_a_suggestion(config: dict[str, Any]) -> None:
    """Before issue 8 this was accepted: the memory checks kept the profile's share and
    `--gpu-memory-utilisation 0.6` reached the container, which vLLM refuses."""
    llm_gpu(config, 0)[1]["args"] = {"gpu_memory_utilisation": 0.6}
    version = config["engines"][config["images"]["vllm"]]["version"]
    assert problems(config) == [
        f"vllm instance 'llama-gpu0-1': args.gpu_memory_utilisation is not a flag of vLLM "
        f"{version} (image '{config['images']['vllm']}'); did you mean gpu_memory_utilization?"]


def test_a_profile_typo_is_reported_once_for_all_its_instances(config: dict[str, Any]) -> None:
    profile(config, "llama3.1-8b")["args"]["enable-prefix-cachng"] = True
    profile(config, "qwen2.5-14b")["args"]["dtype"] = "bf16"
    image = config["images"]["vllm"]
    version = config["engines"][image]["version"]
    assert problems(config) == [
        f"vllm profile 'llama3.1-8b': args.enable_prefix_cachng is not a flag of vLLM {version} "
        f"(image '{image}'); did you mean enable_prefix_caching?",
        f"vllm profile 'qwen2.5-14b': args.dtype must be one of auto, bfloat16, float, float16, "
        f"float32, half in vLLM {version} (image '{image}'), got 'bf16'"]


def test_a_flag_is_checked_against_the_instance_image_version(config: dict[str, Any]) -> None:
    llm_gpu(config, 0)[0]["args"] = {"numa_bind": True}  # new in vLLM 0.20
    assert problems(config)[0] == (
        "vllm instance 'llama-gpu0-0': args.numa_bind is not a flag of vLLM 0.19.1 "
        "(image 'vllm/vllm-openai:v0.19.1')")


def test_broken_engine_data_is_named(config: dict[str, Any]) -> None:
    config["engines"]["vllm/vllm-openai:v0.19.1"]["min_driver"] = 525
    assert problems(config) == [
        "engines 'vllm/vllm-openai:v0.19.1': min_driver must be a non-empty string, got 525"]
