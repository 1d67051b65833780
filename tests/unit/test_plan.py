"""The per-GPU plan: its figures, its text, and `python -m memoryx_deploy plan`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from memoryx_deploy import build_stack, format_plan, plan_rows
from memoryx_deploy.__main__ import load_config, main
from memoryx_deploy.inputs.inventory import inventory_addresses

ROOT = Path(__file__).resolve().parents[2]
GROUP_VARS = ROOT / "group_vars" / "all" / "memoryx.yml"
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
GIB = 1024**2  # KiB per GiB


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([GROUP_VARS])


def test_one_row_per_gpu_with_its_instances(config: dict[str, Any]) -> None:
    rows = plan_rows(build_stack(config, ADDRESSES))
    assert [(r.host, r.gpu, r.instances, r.ports) for r in rows] == [
        ("mx-llm-01", 0, ["llama-gpu0-0", "llama-gpu0-1"], [11401, 11402]),
        ("mx-llm-01", 1, ["llama-gpu1-0", "llama-gpu1-1"], [11403, 11404]),
        ("mx-llm-01", 2, ["qwen-gpu2"], [11405]),
        ("mx-embed-01", 0, ["bge-gpu0"], [11434]),
        ("mx-embed-01", 1, ["bge-gpu1"], [11435]),
    ]


def test_llama_gpu_figures(config: dict[str, Any]) -> None:
    row = plan_rows(build_stack(config, ADDRESSES))[0]
    one = 5.4 + 1.5 + 128 * 8192 / GIB  # weights + overhead + one 8192-token sequence
    assert row.share == pytest.approx(0.90)
    assert row.reserved_gib == pytest.approx(0.90 * 32)
    assert row.estimate_gib == pytest.approx(2 * one)
    assert row.headroom_gib == pytest.approx(32 - 0.90 * 32)
    assert row.kv_tokens == [int((0.45 * 32 - 5.4 - 1.5) * GIB / 128)] * 2


def test_qwen_and_ollama_gpu_figures(config: dict[str, Any]) -> None:
    rows = plan_rows(build_stack(config, ADDRESSES))
    assert rows[2].estimate_gib == pytest.approx(16.0 + 1.5 + 192 * 16384 / GIB)
    assert rows[2].kv_tokens == [int((0.85 * 32 - 16.0 - 1.5) * GIB / 192)]
    assert rows[3].share == pytest.approx(1.1 / 24)
    assert rows[3].estimate_gib == pytest.approx(1.1)
    assert rows[3].headroom_gib == pytest.approx(24 - 1.1)
    assert rows[3].kv_tokens == []


def test_headroom_follows_the_estimate_when_it_exceeds_the_reservation(
        config: dict[str, Any]) -> None:
    config["vllm_profiles"]["qwen2.5-14b"]["weights_gib"] = 25.0  # 25 + 1.5 + 3 = 29.5 > 27.2
    config["vllm_profiles"]["qwen2.5-14b"]["args"]["gpu_memory_utilization"] = 0.95
    config["gpu_utilization_limit"] = 0.95
    row = plan_rows(build_stack(config, ADDRESSES))[2]
    assert row.headroom_gib == pytest.approx(32 - max(0.95 * 32, 29.5))


def test_plan_text(config: dict[str, Any]) -> None:
    lines = format_plan(build_stack(config, ADDRESSES))
    assert lines[0].split() == ["HOST", "GPU", "INSTANCES", "PORTS", "SHARE", "RESERVED",
                                "ESTIMATE", "HEADROOM", "KV", "CAPACITY", "(tokens)"]
    assert lines[3].split() == ["mx-llm-01", "2", "Tesla", "V100-SXM2-32GB", "(32", "GiB)",
                                "qwen-gpu2", "11405", "0.85", "27.2", "GiB", "20.5", "GiB",
                                "4.8", "GiB", "52974"]
    assert lines[1].split()[6:] == ["llama-gpu0-0,", "llama-gpu0-1", "11401,", "11402", "0.90",
                                    "28.8", "GiB", "15.8", "GiB", "3.2", "GiB", "61440,",
                                    "61440"]
    assert lines[4].split()[-8:] == ["0.05", "1.1", "GiB", "1.1", "GiB", "22.9", "GiB", "-"]
    column = lines[0].index("INSTANCES")  # columns line up
    assert lines[1].index("llama-gpu0-0") == lines[3].index("qwen-gpu2") == column
    assert lines[4].index("bge-gpu0") == column
    assert lines[6:] == [
        "",
        "pool llama (vllm, llama3.1-8b): llama-gpu0-0 192.168.31.10:11401, llama-gpu0-1 "
        "192.168.31.10:11402, llama-gpu1-0 192.168.31.10:11403, llama-gpu1-1 "
        "192.168.31.10:11404",
        "pool qwen (vllm, qwen2.5-14b): qwen-gpu2 192.168.31.10:11405",
        "pool bge (ollama, bge-m3): bge-gpu0 127.0.0.1:11434, bge-gpu1 127.0.0.1:11435",
        "gateway mx-embed-01 192.168.31.65:11436: 7 routes",
        "registry: direct (each image from its own registry)",
    ]


def test_the_plan_names_the_registry(config: dict[str, Any]) -> None:
    config["registry"] = {"mode": "private", "address": "registry.lan", "prefix": "hub",
                          "username": "deploy", "ca_file": "/etc/site-ca.crt"}
    assert format_plan(build_stack(config, ADDRESSES))[-1] == (
        "registry: private https://registry.lan, prefix hub, login deploy, CA /etc/site-ca.crt")


def test_an_idle_gpu_shows_its_whole_card(config: dict[str, Any]) -> None:
    del config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][2]
    config["gateway"]["routes"].pop()  # /qwen/
    line = format_plan(build_stack(config, ADDRESSES))[3]
    assert line.split()[6:] == ["-", "-", "0.00", "0.0", "GiB", "0.0", "GiB", "32.0", "GiB",
                                "-"]


def test_inventory_addresses_of_the_lab() -> None:
    assert inventory_addresses(ROOT / "inventory" / "lab" / "hosts.yml") == {
        "localhost": "", "mx-llm-01": "10.99.0.10", "mx-embed-01": "10.99.0.65"}


def test_inventory_host_without_ansible_host(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"gpu_hosts": {
        "hosts": {"a": {"ansible_host": "10.0.0.1"}, "b": None}}}}}))
    assert inventory_addresses(tmp_path) == {"a": "10.0.0.1", "b": ""}


def test_cli_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--inventory", str(ROOT / "inventory" / "production")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == format_plan(build_stack(load_config([GROUP_VARS]), ADDRESSES))


def test_cli_layers_group_vars_and_reports_problems(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    override = tmp_path / "override.yml"
    override.write_text(yaml.safe_dump({"memoryx_gpu_utilization_limit": 0.8}))
    assert main(["plan", "--group-vars", str(GROUP_VARS), "--group-vars", str(override)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "plan: the stack layout has 3 problems:",
        " - mx-llm-01 GPU 0: gpu_memory_utilization sums to 0.90 (llama-gpu0-0 0.45, "
        "llama-gpu0-1 0.45), over the limit 0.8",
        " - mx-llm-01 GPU 1: gpu_memory_utilization sums to 0.90 (llama-gpu1-0 0.45, "
        "llama-gpu1-1 0.45), over the limit 0.8",
        " - mx-llm-01 GPU 2: gpu_memory_utilization sums to 0.85 (qwen-gpu2 0.85), "
        "over the limit 0.8",
    ]


@pytest.mark.parametrize(
    ("inventory", "url"),
    [("inventory/lab/hosts.yml", "https://10.99.0.65:11436"),
     ("inventory/production/hosts.yml", "https://192.168.31.65:11436")],
)
def test_gateway_url_command(inventory: str, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from memoryx_deploy.__main__ import ROOT, main

    assert main(["gateway-url", "--inventory", str(ROOT / inventory)]) == 0
    assert capsys.readouterr().out.strip() == url
