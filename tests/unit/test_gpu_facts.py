"""GPUs as declared against GPUs as nvidia-smi reports them (memoryx_deploy/inputs/gpu_facts.py),
including the lab's stand-in nvidia-smi answering the exact query of the check."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.engines import host_gpu_problems
from memoryx_deploy.inputs.gpu_facts import QUERY, Requirement, compare_gpus, declared_capability

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
V100 = {"name": "Tesla V100-SXM2-32GB", "memory_gib": 32}
DECLARED = [{"index": i, **V100} for i in range(3)]
PLAIN = "| NVIDIA-SMI 535.247.01    Driver Version: 535.247.01    CUDA Version: 12.2     |"
NEEDS = [Requirement("vllm/vllm-openai:v0.19.1", "525.60.13", "12.0")]


def query(*rows: str) -> str:
    return "\n".join(rows) + "\n"


def v100(index: int, memory: str = "32768", cap: str = "7.0", driver: str = "535.247.01") -> str:
    return f"{index}, Tesla V100-SXM2-32GB, {memory}, {cap}, {driver}"


def test_the_same_gpus_give_no_problem() -> None:
    assert compare_gpus("mx-llm-01", DECLARED, query(v100(0), v100(1), v100(2)), PLAIN, NEEDS) == []


def test_units_are_accepted() -> None:
    rows = query(*(v100(i, "32768 MiB") for i in range(3)))
    assert compare_gpus("mx-llm-01", DECLARED, rows, PLAIN, NEEDS) == []


def test_memory_within_the_tolerance_is_the_same_card() -> None:
    rows = query(v100(0, "32510"), v100(1, str(32768 - 32768 // 16)), v100(2))  # reserved, ECC
    assert compare_gpus("mx-llm-01", DECLARED, rows, PLAIN) == []
    rows = query(v100(0, str(int(32768 * 0.91))), v100(1), v100(2))
    assert len(compare_gpus("mx-llm-01", DECLARED, rows, PLAIN)) == 1


def test_another_model_memory_and_capability_name_host_index_expected_found() -> None:
    rows = query("0, Tesla V100-SXM2-16GB, 16384, 7.0, 535.247.01", v100(1, cap="7.5"), v100(2))
    assert compare_gpus("mx-llm-01", DECLARED, rows, PLAIN) == [
        "mx-llm-01 GPU 0: model expected 'Tesla V100-SXM2-32GB', found 'Tesla V100-SXM2-16GB'",
        "mx-llm-01 GPU 0: memory expected 32 GiB (32768 MiB, within 8%), found 16384 MiB",
        "mx-llm-01 GPU 1: compute capability expected 7.0, found 7.5",
    ]


def test_a_missing_and_an_extra_gpu() -> None:
    assert compare_gpus("mx-llm-01", DECLARED, query(v100(0), v100(1)), PLAIN) == [
        "mx-llm-01: 3 GPUs declared (memoryx_gpu_hosts), nvidia-smi reports 2",
        "mx-llm-01 GPU 2: declared 'Tesla V100-SXM2-32GB' 32 GiB, nvidia-smi reports no such GPU",
    ]
    assert compare_gpus("mx-llm-01", DECLARED[:1], query(v100(0), v100(1)), PLAIN) == [
        "mx-llm-01: 1 GPUs declared (memoryx_gpu_hosts), nvidia-smi reports 2",
        "mx-llm-01 GPU 1: not declared, nvidia-smi reports 'Tesla V100-SXM2-32GB' 32768 MiB",
    ]


def test_driver_and_cuda_below_what_an_image_needs() -> None:
    rows = query(*(v100(i, driver="470.256.02") for i in range(3)))
    plain = PLAIN.replace("12.2", "11.4")
    assert compare_gpus("mx-llm-01", DECLARED, rows, plain, NEEDS) == [
        "mx-llm-01: driver 470.256.02 is older than 525.60.13, which image "
        "'vllm/vllm-openai:v0.19.1' needs (memoryx_engines min_driver)",
        "mx-llm-01: the driver supports CUDA 11.4, image 'vllm/vllm-openai:v0.19.1' needs at "
        "least 12.0 (memoryx_engines min_cuda)",
    ]
    assert compare_gpus("mx-llm-01", DECLARED, query(v100(0), v100(1), v100(2)), "", NEEDS) == [
        "mx-llm-01: nvidia-smi printed no \"CUDA Version\"; the CUDA version the driver "
        "supports is unknown"]


def test_an_unreadable_line_is_named() -> None:
    assert compare_gpus("h", DECLARED[:1], query(v100(0), "No devices were found"), PLAIN)[0] == (
        "h: nvidia-smi line 2 'No devices were found' is not index, name, memory.total, "
        "compute_cap, driver_version")


def test_declared_capability_by_name_or_given() -> None:
    assert declared_capability({"name": "Tesla P40"}) == "6.1"
    assert declared_capability({"name": "Tesla V100-SXM2-32GB"}) == "7.0"
    assert declared_capability({"name": "Tesla P40", "compute_capability": "6.0"}) == "6.0"
    assert declared_capability({"name": "NVIDIA RTX 9999"}) is None


# --- through the lab's stand-in driver --------------------------------------------------------

def load_smi() -> Any:
    loader = importlib.machinery.SourceFileLoader("nvidia_smi_facts", str(ROOT / "lab/nvidia/nvidia-smi"))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module
    loader.exec_module(module)
    return module


def lab_table(tmp_path: Path, host: str, **change: Any) -> Path:
    """The table lab/lab.sh writes for `host` from lab/lab.yml (gpu_table)."""
    data = yaml.safe_load((ROOT / "lab" / "lab.yml").read_text())["hosts"][host]
    gpus = [{"index": g["index"], "name": g["name"], "memory_total_mib": g["memory_mib"],
             "compute_cap": g["compute_cap"], **change} for g in data["gpus"]]
    path = tmp_path / f"{host}.json"
    path.write_text(json.dumps({"driver_version": data["driver_version"],
                                "cuda_version": data["cuda_version"], "gpus": gpus}))
    return path


def smi_output(tmp_path: Path, table: Path, args: list[str]) -> str:
    lines: list[str] = load_smi().run(args, {}, table, tmp_path / "ledger")
    return "\n".join(lines)


@pytest.mark.parametrize("host", ["mx-llm-01", "mx-embed-01"])
def test_the_lab_hardware_agrees_with_the_stack_data(tmp_path: Path, host: str) -> None:
    config = load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])
    stack = build_stack(config, ADDRESSES)
    table = lab_table(tmp_path, host)
    rows = smi_output(tmp_path, table, QUERY.split()[1:])
    assert host_gpu_problems(stack, host, rows,
                             smi_output(tmp_path, table, [])) == []


def test_a_lab_gpu_with_other_memory_stops_the_check(tmp_path: Path) -> None:
    config = load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])
    stack = build_stack(config, ADDRESSES)
    table = lab_table(tmp_path, "mx-embed-01", name="Tesla P4", memory_total_mib=7680)
    rows = smi_output(tmp_path, table, QUERY.split()[1:])
    assert host_gpu_problems(stack, "mx-embed-01", rows,
                             smi_output(tmp_path, table, [])) == [
        "mx-embed-01 GPU 0: model expected 'Tesla P40', found 'Tesla P4'",
        "mx-embed-01 GPU 0: memory expected 24 GiB (24576 MiB, within 8%), found 7680 MiB",
        "mx-embed-01 GPU 1: model expected 'Tesla P40', found 'Tesla P4'",
        "mx-embed-01 GPU 1: memory expected 24 GiB (24576 MiB, within 8%), found 7680 MiB",
    ]
