"""Verify role vllm_instance: GPU pinning, exact args, sequential start, readiness."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ScenarioPlaybook

from memoryx_deploy import build_stack

SCENARIO = Path(__file__).resolve().parent.parent
GPU_MIB = 32768


def converge_data() -> tuple[list[dict[str, Any]], str]:
    """The instances converge.yml gives the role: the same stack, built from the same layout."""
    layout = yaml.safe_load((SCENARIO.parent / "shared" / "vars" / "layout.yml").read_text())["mxmol_layout"]
    layout["engines"] = yaml.safe_load(
        (SCENARIO.parents[1] / "group_vars" / "all" / "memoryx.yml").read_text())["memoryx_engines"]
    layout["extra_engines"] = yaml.safe_load((SCENARIO.parents[1] / "inventory" / "lab" / "group_vars" / "lab"
                                               / "engines.yml").read_text())["memoryx_extra_engines"]
    addresses = yaml.safe_load((SCENARIO / "molecule.yml").read_text())[
        "provisioner"]["inventory"]["group_vars"]["all"]["mxmol_addresses"]
    stack = build_stack(layout, addresses)
    return [dict(i) for i in stack["by_host"]["mx-llm-01"]["vllm_instances"]], layout["vllm_models_dir"]


INSTANCES, MODELS_DIR = converge_data()
BY_NAME = {item["name"]: item for item in INSTANCES}


def inspect(host: Any, container: str) -> dict[str, Any]:
    data = json.loads(host.check_output(f"docker inspect {container}"))
    assert len(data) == 1
    return dict(data[0])


def get_json(host: Any, port: int, path: str) -> Any:
    return json.loads(host.check_output(f"curl -fsS --max-time 5 http://127.0.0.1:{port}{path}"))


def docker_time(stamp: str) -> float:
    """Docker's RFC 3339 nanosecond time as a POSIX timestamp."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0"))


def test_the_data_has_two_instances_on_gpu0_and_one_on_gpu1() -> None:
    assert sorted((item["gpu"], item["position"]) for item in INSTANCES) == [(0, 0), (0, 1), (1, 0)]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_container_runs_healthy_without_restarts(host: Any, name: str) -> None:
    state = inspect(host, BY_NAME[name]["container_name"])
    assert state["State"]["Status"] == "running"
    assert state["State"]["Health"]["Status"] == "healthy"
    assert state["RestartCount"] == 0


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_container_runs_exactly_the_args_and_env_of_the_data(host: Any, name: str) -> None:
    item = BY_NAME[name]
    config = inspect(host, item["container_name"])["Config"]
    assert config["Cmd"] == item["args"]
    assert config["Cmd"][:2] == ["--model", "/model_data/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4"]
    assert config["Image"] == item["image"]
    env = dict(line.split("=", 1) for line in config["Env"])
    for key, value in item["env"].items():
        assert env[key] == value
    assert config["Labels"]["memoryx.instance"] == name
    assert config["Labels"]["memoryx.gpu"] == str(item["gpu"])


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_device_request_pins_the_gpu_of_the_data(host: Any, name: str) -> None:
    item = BY_NAME[name]
    requests = inspect(host, item["container_name"])["HostConfig"]["DeviceRequests"]
    assert len(requests) == 1
    assert requests[0]["Driver"] == "nvidia"
    assert requests[0]["DeviceIDs"] == [str(item["gpu"])]
    assert requests[0]["Capabilities"] == [["gpu"]]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_port_published_on_bind_address_and_loopback_only(host: Any, name: str) -> None:
    item = BY_NAME[name]
    bindings = inspect(host, item["container_name"])["HostConfig"]["PortBindings"]
    assert sorted(b["HostIp"] for b in bindings["8000/tcp"]) == sorted({item["bind_address"], "127.0.0.1"})
    assert {b["HostPort"] for b in bindings["8000/tcp"]} == {str(item["port"])}


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_health_and_models_answer_on_the_published_port(host: Any, name: str) -> None:
    item = BY_NAME[name]
    for address in sorted({item["bind_address"], "127.0.0.1"}):
        status = host.check_output(
            f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 http://{address}:{item['port']}/health"
        )
        assert status == "200"
    models = get_json(host, item["port"], "/v1/models")
    assert [m["id"] for m in models["data"]] == [item["served_model_name"]]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_engine_sees_only_its_gpu(host: Any, name: str) -> None:
    item = BY_NAME[name]
    info = get_json(host, item["port"], "/sim/info")
    assert info["visible_devices"] == str(item["gpu"])
    assert info["gpu"]["index"] == item["gpu"]
    assert info["args"]["gpu_memory_utilization"] == item["gpu_memory_utilization"]


def test_second_instance_of_gpu0_started_after_the_first_was_ready(host: Any) -> None:
    first, second = BY_NAME["llama-gpu0-0"], BY_NAME["llama-gpu0-1"]
    first_ready = float(get_json(host, first["port"], "/sim/info")["started"])
    second_started = docker_time(inspect(host, second["container_name"])["State"]["StartedAt"])
    assert first_ready <= second_started


def test_driver_reports_the_memory_of_both_instances_on_gpu0(host: Any) -> None:
    out = host.check_output("nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits")
    used = {int(i): int(m) for i, m in (line.split(",") for line in out.splitlines())}
    expected: dict[int, float] = {}
    for item in INSTANCES:
        expected[item["gpu"]] = expected.get(item["gpu"], 0.0) + item["gpu_memory_utilization"] * GPU_MIB
    assert set(used) == set(expected)
    for gpu, mib in expected.items():
        assert abs(used[gpu] - mib) <= 1


def test_missing_model_directory_stops_the_run_naming_it(host: Any, scenario_playbook: ScenarioPlaybook) -> None:
    result = scenario_playbook("missing_model.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"model directory {MODELS_DIR}/No-Such-Model has no config.json" in output
    assert "vllm instance 'ghost-gpu1-1'" in output
    assert host.run("docker inspect vllm_ghost_gpu1_1").rc != 0
