"""vLLM's real flags: the generated lists (memoryx_deploy/data/vllm-flags-*.json), the checks
of `args` against them, the extractor of scripts/vllm-flags, and the lab simulator's copies."""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.vllm_flags import DATA_DIR, load_flags, parse_flags

ROOT = Path(__file__).resolve().parents[2]
LAB_FLAGS = ROOT / "lab" / "simulators" / "vllm-flags"
GENERATED = sorted(DATA_DIR.glob("vllm-flags-*.json"))


def load_script(path: Path, name: str) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


script = load_script(ROOT / "scripts" / "vllm-flags", "vllm_flags_script")


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def pinned_version(config: dict[str, Any]) -> str:
    return str(config["engines"][config["images"]["vllm"]]["version"])


@pytest.mark.parametrize("path", GENERATED, ids=[p.name for p in GENERATED])
def test_a_generated_list_names_its_version_and_source(path: Path) -> None:
    data = json.loads(path.read_text())
    version = path.name.removeprefix("vllm-flags-").removesuffix(".json")
    assert data["vllm_version"] == version
    assert data["command"] == "vllm serve"
    assert data["source"]["sdist"] == f"vllm-{version}.tar.gz"
    assert re.fullmatch(r"[0-9a-f]{64}", data["source"]["sha256"])
    assert f"scripts/vllm-flags {version}" in data["source"]["method"]
    options = [o for action in data["actions"] for o in action["options"]]
    assert len(options) == len(set(options)), "an option string listed twice"
    assert all(a["kind"] in ("value", "switch", "boolean_pair") for a in data["actions"])


def test_the_pinned_version_has_a_list(config: dict[str, Any]) -> None:
    assert load_flags(pinned_version(config)) is not None


def test_every_flag_of_the_shipped_profiles_is_a_real_flag_of_the_pinned_version(
        config: dict[str, Any]) -> None:
    flags = load_flags(pinned_version(config))
    assert flags is not None
    checked = 0
    for profile in config["vllm_profiles"].values():
        for key, value in profile["args"].items():
            assert flags.problem(key, value) is None, (key, value)
            checked += 1
    assert checked >= 10


def test_kinds_read_from_the_generated_list(config: dict[str, Any]) -> None:
    flags = load_flags(pinned_version(config))
    assert flags is not None
    assert flags.flags["--gpu-memory-utilization"].kind == "value"
    assert flags.flags["--enable-prefix-caching"].kind == "boolean_pair"
    assert flags.flags["--no-enable-prefix-caching"].kind == "boolean_pair"
    assert flags.flags["--grpc"].kind == "switch"
    assert flags.flags["--dtype"].choices is not None and "half" in flags.flags["--dtype"].choices


def test_a_typo_gets_the_closest_flag() -> None:
    flags = load_flags("0.19.1")
    assert flags is not None
    assert flags.problem("gpu_memory_utilisation", 0.6) == (
        "args.gpu_memory_utilisation is not a flag of vLLM 0.19.1; "
        "did you mean gpu_memory_utilization?")
    assert flags.problem("swap_space", 4, "vllm/vllm-openai:v0.19.1") == (
        "args.swap_space is not a flag of vLLM 0.19.1 (image 'vllm/vllm-openai:v0.19.1')")


def test_value_and_switch_shapes_are_checked() -> None:
    flags = load_flags("0.19.1")
    assert flags is not None
    assert flags.problem("max_model_len", True) == (
        "args.max_model_len takes a value (--max-model-len VALUE) in vLLM 0.19.1, got true")
    assert flags.problem("enforce_eager", "yes") == (
        "args.enforce_eager is a switch (--enforce-eager) of vLLM 0.19.1: give true or false, "
        "got 'yes'")
    assert flags.problem("dtype", "halff") == (
        "args.dtype must be one of auto, bfloat16, float, float16, float32, half in vLLM 0.19.1, "
        "got 'halff'")
    for key, value in (("no_enable_prefix_caching", True), ("enable_prefix_caching", False),
                       ("trust-remote-code", True), ("max_model_len", None), ("dtype", "half")):
        assert flags.problem(key, value) is None, key


def test_a_flag_of_one_version_only() -> None:
    old, new = load_flags("0.19.1"), load_flags("0.20.0")
    assert old is not None and new is not None
    assert "--numa-bind" in new.flags and "--numa-bind" not in old.flags
    assert old.problem("numa_bind", True) == "args.numa_bind is not a flag of vLLM 0.19.1"


def test_no_list_for_an_unknown_version() -> None:
    assert load_flags("0.0.1") is None


def test_parse_flags_keeps_long_options_only() -> None:
    flags = parse_flags({"vllm_version": "9.9", "actions": [
        {"options": ["--tensor-parallel-size", "-tp"], "dest": "tensor_parallel_size",
         "kind": "value", "nargs": None, "choices": None}]})
    assert list(flags.flags) == ["--tensor-parallel-size"]


def test_the_extractor_describes_argparse_actions() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trust-remote-code", action=argparse.BooleanOptionalAction)
    parser.add_argument("--grpc", action="store_true")
    parser.add_argument("--api-key", nargs="+")
    parser.add_argument("--dtype", choices=["auto", "half"])
    described = [script.describe(a) for a in parser._actions if "--help" not in a.option_strings]
    assert described == [
        {"options": ["--trust-remote-code", "--no-trust-remote-code"], "dest": "trust_remote_code",
         "kind": "boolean_pair", "nargs": 0, "choices": None},
        {"options": ["--grpc"], "dest": "grpc", "kind": "switch", "nargs": 0, "choices": None},
        {"options": ["--api-key"], "dest": "api_key", "kind": "value", "nargs": "+",
         "choices": None},
        {"options": ["--dtype"], "dest": "dtype", "kind": "value", "nargs": None,
         "choices": ["auto", "half"]},
    ]


@pytest.mark.parametrize("path", sorted(LAB_FLAGS.glob("*.json")), ids=lambda p: p.name)
def test_the_simulator_copies_are_the_generated_lists(path: Path) -> None:
    assert path.read_bytes() == (DATA_DIR / path.name).read_bytes()


def test_every_lab_simulator_version_has_its_copy() -> None:
    stand_ins = yaml.safe_load((ROOT / "inventory/lab/group_vars/lab/engines.yml").read_text())
    sims = {image: engine for image, engine in stand_ins["memoryx_extra_engines"].items()
            if engine.get("stand_in") and engine["engine"] == "vllm"}
    assert sims
    for engine in sims.values():
        assert (LAB_FLAGS / f"vllm-flags-{engine['version']}.json").is_file()
    dockerfile = (ROOT / "lab" / "simulators" / "Dockerfile.vllm").read_text()
    default = re.search(r"^ARG VLLM_VERSION=(\S+)$", dockerfile, re.M)
    assert default is not None
    assert default.group(1) == sims["memoryx-lab/vllm-sim:lab"]["version"]
