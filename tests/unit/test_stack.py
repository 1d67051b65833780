"""build_stack on the production data and small valid variations of it."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.inventory import inventory_addresses

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def by_name(stack: Any, kind: str, name: str) -> Any:
    return next(i for i in stack[f"{kind}_instances"] if i["name"] == name)


def test_production_inventory_gives_the_documented_addresses() -> None:
    # The controller (localhost) has no address of its own: it runs the local plays.
    assert inventory_addresses(ROOT / "inventory" / "production") == {**ADDRESSES, "localhost": ""}


def test_production_layout_builds(config: dict[str, Any]) -> None:
    stack = build_stack(config, ADDRESSES)
    assert [i["name"] for i in stack["vllm_instances"]] == [
        "llama-gpu0-0", "llama-gpu0-1", "llama-gpu1-0", "llama-gpu1-1", "qwen-gpu2"]
    assert [(i["gpu"], i["position"]) for i in stack["vllm_instances"]] == [
        (0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert [i["name"] for i in stack["ollama_instances"]] == ["bge-gpu0", "bge-gpu1"]
    assert {name: len(pool["members"]) for name, pool in stack["pools"].items()} == {
        "llama": 4, "qwen": 1, "bge": 2}
    # what each pool runs at once: 4 x max-num-seqs 16, 1 x 32, 2 x OLLAMA_NUM_PARALLEL 4
    assert {name: pool["capacity"] for name, pool in stack["pools"].items()} == {
        "llama": 64, "qwen": 32, "bge": 8}
    assert stack["gateway"]["models"] == {
        "llama3.1-8b": "llama", "qwen2.5-14b": "qwen", "bge-m3": "bge"}
    assert stack["hosts"]["mx-embed-01"] == {"address": "192.168.31.65", "gpus": [
        {"index": 0, "name": "Tesla P40", "memory_gib": 24, "compute_capability": "6.1"},
        {"index": 1, "name": "Tesla P40", "memory_gib": 24, "compute_capability": "6.1"}]}


def test_vllm_instance_has_the_documented_shape(config: dict[str, Any]) -> None:
    instance = build_stack(config, ADDRESSES)["vllm_instances"][0]
    image = config["images"]["vllm"]
    args = ["--model", "/model_data/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4",
            "--served-model-name", "llama3.1-8b", "--dtype", "half",
            "--gpu-memory-utilization", "0.45", "--max-model-len", "8192",
            "--block-size", "64", "--max-num-seqs", "16", "--trust-remote-code"]
    env = {"NCCL_P2P_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    assert instance == {
        "name": "llama-gpu0-0", "host": "mx-llm-01", "address": "192.168.31.10",
        "bind_address": "192.168.31.10", "gpu": 0, "position": 0, "port": 11401,
        "container_name": "vllm_llama_gpu0_0", "image": image,
        "pool": "llama", "served_model_name": "llama3.1-8b",
        "model_path": "Meta-Llama-3.1-8B-Instruct-GPTQ-INT4",
        "model_dir": "/data/projects/models/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4",
        "gpu_memory_utilization": 0.45, "args": args, "env": env,
        "weights_gib": 5.4, "overhead_gib": 1.5, "kv_cache_kib_per_token": 128,
        "max_model_len": 8192,
        "container": {
            "name": "vllm_llama_gpu0_0", "image": image, "command": args, "env": env,
            "published_ports": ["192.168.31.10:11401:8000", "127.0.0.1:11401:8000"],
            "volumes": ["/data/projects/models:/model_data:ro"],
            "device_requests": [{"driver": "nvidia", "count": 0, "device_ids": ["0"],
                                 "capabilities": [["gpu"]]}],
            "labels": {"memoryx.role": "vllm", "memoryx.instance": "llama-gpu0-0",
                       "memoryx.pool": "llama", "memoryx.gpu": "0"},
            "healthcheck": {"test": ["CMD", "python3", "-c",
                                     "import urllib.request; urllib.request.urlopen("
                                     "'http://127.0.0.1:8000/health', timeout=5)"],
                            "interval": "10s", "timeout": "10s", "retries": 3,
                            "start_period": "15m"},
            "restart_policy": "unless-stopped", "stop_timeout": 120,
            "log_driver": "json-file", "log_options": {"max-size": "50m", "max-file": "5"},
        },
    }


def test_ollama_instance_has_the_documented_shape(config: dict[str, Any]) -> None:
    instance = build_stack(config, ADDRESSES)["ollama_instances"][1]
    image = config["images"]["ollama"]
    env = {"OLLAMA_NUM_PARALLEL": "4", "OLLAMA_KEEP_ALIVE": "-1", "OLLAMA_MAX_LOADED_MODELS": "1"}
    assert instance == {
        "name": "bge-gpu1", "host": "mx-embed-01", "address": "192.168.31.65",
        "bind_address": "127.0.0.1", "gpu": 1, "position": 0, "port": 11435,
        "container_name": "ollama_bge_gpu1", "image": image, "pool": "bge",
        "model": "bge-m3", "models_dir": "/data/ollama_models", "env": env,
        "memory_gib": 1.1, "embedding_dim": 1024,
        "container": {
            "name": "ollama_bge_gpu1", "image": image, "command": None, "env": env,
            "published_ports": ["127.0.0.1:11435:11434"],
            "volumes": ["/data/ollama_models:/root/.ollama"],
            "device_requests": [{"driver": "nvidia", "count": 0, "device_ids": ["1"],
                                 "capabilities": [["gpu"]]}],
            "labels": {"memoryx.role": "ollama", "memoryx.instance": "bge-gpu1",
                       "memoryx.pool": "bge", "memoryx.gpu": "1"},
            "healthcheck": None, "restart_policy": "unless-stopped", "stop_timeout": 30,
            "log_driver": "json-file", "log_options": {"max-size": "50m", "max-file": "5"},
        },
    }


def test_container_settings_come_from_the_data(config: dict[str, Any]) -> None:
    config["containers"] = {"restart_policy": "unless-stopped", "vllm_stop_timeout": 30,
                            "vllm_healthcheck_interval": "1s", "ollama_stop_timeout": 5}
    stack = build_stack(config, ADDRESSES)
    vllm = stack["vllm_instances"][0]["container"]
    assert (vllm["restart_policy"], vllm["stop_timeout"]) == ("unless-stopped", 30)
    assert vllm["healthcheck"] is not None
    assert (vllm["healthcheck"]["interval"], vllm["healthcheck"]["start_period"]) == ("1s", "15m")
    assert stack["ollama_instances"][0]["container"]["stop_timeout"] == 5


def test_each_host_gets_its_own_part(config: dict[str, Any]) -> None:
    views = build_stack(config, {**ADDRESSES, "localhost": ""})["by_host"]
    llm, embed = views["mx-llm-01"], views["mx-embed-01"]
    assert [i["name"] for i in llm["vllm_instances"]] == [
        "llama-gpu0-0", "llama-gpu0-1", "llama-gpu1-0", "llama-gpu1-1", "qwen-gpu2"]
    assert llm["ollama_instances"] == [] and not llm["gateway"]
    assert llm["firewall_ports"] == [11401, 11402, 11403, 11404, 11405]
    assert llm["images"] == [{"name": config["images"]["vllm"],
                              "archive": config["images"]["vllm"].replace("/", "_").replace(":", "_") + ".tar"}]
    assert llm["gpus"] == [0, 1, 2]
    assert [i["name"] for i in embed["ollama_instances"]] == ["bge-gpu0", "bge-gpu1"]
    assert embed["gateway"] and embed["firewall_ports"] == []  # bound to loopback: no rule needed
    assert [image["name"] for image in embed["images"]] == [config["images"]["ollama"],
                                                            config["images"]["nginx"]]
    assert views["localhost"] == {"vllm_instances": [], "ollama_instances": [], "gateway": False,
                                  "gpus": [], "images": [], "firewall_ports": [], "boot_waves": [],
                                  "boot_warm": {}}


def test_each_host_boots_in_the_deploys_waves(config: dict[str, Any]) -> None:
    """Per position on its GPU, every GPU at once; the gateway's containers last."""
    views = build_stack(config, ADDRESSES)["by_host"]
    assert views["mx-llm-01"]["boot_waves"] == [
        ["vllm_llama_gpu0_0", "vllm_llama_gpu1_0", "vllm_qwen_gpu2"], ["vllm_llama_gpu0_1", "vllm_llama_gpu1_1"]]
    assert views["mx-embed-01"]["boot_waves"] == [
        ["ollama_bge_gpu0", "ollama_bge_gpu1"], ["memoryx_gateway_router", "memoryx_gateway"]]
    assert views["mx-embed-01"]["boot_warm"]["ollama_bge_gpu1"] == {
        "url": "http://127.0.0.1:11435/api/embed",
        "body": {"model": "bge-m3", "input": "memoryx warm-up", "keep_alive": -1}}
    assert views["mx-llm-01"]["boot_warm"] == {}


def test_a_gateway_host_without_gpus_gets_the_gateway_image(config: dict[str, Any]) -> None:
    config["gateway"]["host"] = "mx-gw-01"
    view = build_stack(config, {**ADDRESSES, "mx-gw-01": "192.168.31.70"})["by_host"]["mx-gw-01"]
    assert view["gateway"] and view["gpus"] == []
    assert view["images"] == [{"name": config["images"]["nginx"],
                               "archive": config["images"]["nginx"].replace("/", "_").replace(":", "_") + ".tar"}]


def test_pool_members_are_addressed_as_the_gateway_reaches_them(config: dict[str, Any]) -> None:
    pools = build_stack(config, ADDRESSES)["pools"]
    assert pools["qwen"] == {"kind": "vllm", "models": ["qwen2.5-14b"], "members": [
        {"name": "qwen-gpu2", "host": "mx-llm-01", "address": "192.168.31.10", "port": 11405}],
        "capacity": 32}
    assert pools["bge"]["members"] == [
        {"name": "bge-gpu0", "host": "mx-embed-01", "address": "127.0.0.1", "port": 11434},
        {"name": "bge-gpu1", "host": "mx-embed-01", "address": "127.0.0.1", "port": 11435}]


def test_moving_the_gateway_moves_the_loopback_binding(config: dict[str, Any]) -> None:
    config["gateway"]["host"] = "mx-llm-01"
    stack = build_stack(config, ADDRESSES)
    assert {i["bind_address"] for i in stack["vllm_instances"]} == {"127.0.0.1"}
    assert {i["bind_address"] for i in stack["ollama_instances"]} == {"192.168.31.65"}
    assert stack["pools"]["bge"]["members"][0]["address"] == "192.168.31.65"
    assert stack["gateway"]["address"] == "192.168.31.10"


def test_instance_args_override_in_place_and_append(config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][2][0]["args"] = {
        "max_num_seqs": 8, "enable_prefix_caching": False, "shutdown_timeout": 30,
        "tokenizer-revision": None, "hf_overrides": {"rope_scaling": None},
        "cpu_offload_gb": 0.5}
    args = by_name(build_stack(config, ADDRESSES), "vllm", "qwen-gpu2")["args"]
    assert args == [
        "--model", "/model_data/Qwen2.5-14B-Instruct-GPTQ-Int8",
        "--served-model-name", "qwen2.5-14b", "--dtype", "half",
        "--gpu-memory-utilization", "0.85", "--max-model-len", "16384", "--block-size", "128",
        "--max-num-seqs", "8", "--trust-remote-code", "--enable-chunked-prefill",
        "--shutdown-timeout", "30", "--hf-overrides", '{"rope_scaling":null}',
        "--cpu-offload-gb", "0.5"]


def test_instance_env_and_image_override(config: dict[str, Any]) -> None:
    instance = config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][2][0]
    instance["env"] = {"VLLM_LOGGING_LEVEL": "DEBUG", "HF_HUB_OFFLINE": "0", "OMP_THREADS": 4}
    instance["image"] = "vllm/vllm-openai:v0.18.0"
    qwen = by_name(build_stack(config, ADDRESSES), "vllm", "qwen-gpu2")
    assert qwen["env"] == {"NCCL_P2P_DISABLE": "1", "VLLM_LOGGING_LEVEL": "DEBUG",
                           "OMP_THREADS": "4", "HF_HUB_OFFLINE": "1"}
    assert qwen["image"] == "vllm/vllm-openai:v0.18.0"


def test_gpu_indexes_may_arrive_as_strings(config: dict[str, Any]) -> None:
    expected = build_stack(copy.deepcopy(config), ADDRESSES)
    for host in config["gpu_hosts"].values():
        for key in ("vllm_instances", "ollama_instances"):
            if key in host:
                host[key] = {str(index): items for index, items in host[key].items()}
    assert build_stack(config, ADDRESSES) == expected


def test_templated_numbers_may_arrive_as_strings(config: dict[str, Any]) -> None:
    expected = build_stack(copy.deepcopy(config), ADDRESSES)
    config["gpu_utilization_limit"] = "0.95"
    config["vllm_overhead_gib"] = "1.5"
    assert build_stack(config, ADDRESSES) == expected


def test_routes_default_to_exact_unless_the_path_is_a_prefix(config: dict[str, Any]) -> None:
    routes = build_stack(config, ADDRESSES)["gateway"]["routes"]
    assert routes[0] == {"path": "/v1/embeddings", "pool": "bge", "strip_prefix": False,
                         "route_by_model": False, "exact": True}
    assert routes[2] == {"path": "/embed/", "pool": "bge", "strip_prefix": True,
                         "route_by_model": False, "exact": False}
    assert routes[3]["pool"] is None
    assert routes[3]["route_by_model"] is True


def test_input_is_not_modified(config: dict[str, Any]) -> None:
    before = copy.deepcopy(config)
    build_stack(config, ADDRESSES)
    assert config == before


def test_the_same_port_on_different_hosts_is_fine(config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-embed-01"]["ollama_instances"][0][0]["port"] = 11401
    assert build_stack(config, ADDRESSES)["ollama_instances"][0]["port"] == 11401
