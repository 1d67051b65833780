"""MemoryX's client settings, all through the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import StackError, build_stack, client_config, render_env, render_python
from memoryx_deploy.__main__ import load_config

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
URL = "http://192.168.31.65:11436"
V1 = URL + "/v1"


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def test_production_client_config(config: dict[str, Any]) -> None:
    assert client_config(build_stack(config, ADDRESSES), URL) == {
        "embeddings": {"base_url": V1, "model": "bge-m3", "dimensions": 1024},
        "llama": {"base_url": V1, "model": "llama3.1-8b"},
        "qwen": {"base_url": V1, "model": "qwen2.5-14b"},
    }


def test_trailing_slash_is_dropped(config: dict[str, Any]) -> None:
    assert client_config(build_stack(config, ADDRESSES), URL + "/")["llama"]["base_url"] == V1


@pytest.mark.parametrize("url", ["192.168.31.65:11436", "", "ftp://x"])
def test_gateway_url_must_be_http(config: dict[str, Any], url: str) -> None:
    with pytest.raises(StackError) as caught:
        client_config(build_stack(config, ADDRESSES), url)
    assert caught.value.problems == [f"gateway_url must be an http(s) URL, got {url!r}"]


def test_env_file(config: dict[str, Any]) -> None:
    assert render_env(client_config(build_stack(config, ADDRESSES), URL)) == (
        f"MEMORYX_EMBED_BASE_URL={V1}\n"
        "MEMORYX_EMBED_MODEL=bge-m3\n"
        "MEMORYX_EMBED_DIM=1024\n"
        f"MEMORYX_LLAMA_BASE_URL={V1}\n"
        "MEMORYX_LLAMA_MODEL=llama3.1-8b\n"
        f"MEMORYX_QWEN_BASE_URL={V1}\n"
        "MEMORYX_QWEN_MODEL=qwen2.5-14b\n")


def test_python_config_defines_the_documented_constants(config: dict[str, Any]) -> None:
    text = render_python(client_config(build_stack(config, ADDRESSES), URL))
    constants: dict[str, Any] = {}
    exec(compile(text, "config.py", "exec"), constants)
    assert {k: v for k, v in constants.items() if k.isupper()} == {
        "EMBED_BASE_URL": V1, "EMBED_MODEL": "bge-m3", "EMBED_DIM": 1024,
        "LLAMA_BASE_URL": V1, "LLAMA_MODEL": "llama3.1-8b",
        "QWEN_BASE_URL": V1, "QWEN_MODEL": "qwen2.5-14b"}
    assert 'LLAMA_MODEL = "llama3.1-8b"\n' in text
    assert text.startswith("# MemoryX")


def test_another_pool_gets_its_own_entry(config: dict[str, Any]) -> None:
    config["vllm_profiles"]["mistral-7b"] = {
        "pool": "mistral-small", "model_path": "Mistral-7B-Instruct-AWQ",
        "served_model_name": "mistral-7b", "weights_gib": 4.2, "kv_cache_kib_per_token": 128,
        "args": {"gpu_memory_utilization": 0.5, "max_model_len": 8192}}
    config["gpu_hosts"]["mx-llm-01"]["gpus"].append(
        {"index": 3, "name": "Tesla V100-SXM2-32GB", "memory_gib": 32})
    config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][3] = [
        {"name": "mistral-gpu3", "profile": "mistral-7b", "port": 11437}]
    settings = client_config(build_stack(config, ADDRESSES), URL)
    assert settings["mistral-small"] == {"base_url": V1, "model": "mistral-7b"}
    assert f"MEMORYX_MISTRAL_SMALL_BASE_URL={V1}\n" in render_env(settings)
    assert 'MISTRAL_SMALL_MODEL = "mistral-7b"' in render_python(settings)


def test_a_pool_named_embed_would_clash(config: dict[str, Any]) -> None:
    config["vllm_profiles"]["qwen2.5-14b"]["pool"] = "embed"
    config["gateway"]["routes"][6]["pool"] = "embed"
    # Refused with the layout, by the preflight: not at the end of a deploy.
    with pytest.raises(StackError) as caught:
        build_stack(config, ADDRESSES)
    assert caught.value.problems == [
        "pool 'embed': its client constants (EMBED_*) clash with those of pool 'bge'; "
        "rename the pool"]
