"""The status view: the running stack against its data (memoryx_deploy/operate/status.py)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.operate.status import format_status, log_search, probe_results, status_report
from memoryx_deploy.schema.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
NOW = "2026-11-27T12:00:00Z"
STARTED = "2026-11-27T11:58:29.923456789Z"  # Docker's nanoseconds: 90.08 s before NOW
IMAGE_ENV = ["PATH=/usr/local/bin:/usr/bin", "PYTHONUNBUFFERED=1"]
GATEWAY = ["memoryx_gateway", "memoryx_gateway_router"]


@pytest.fixture(scope="module")
def stack() -> Stack:
    return build_stack(load_config([ROOT / "group_vars" / "all" / "memoryx.yml"]), ADDRESSES)


def inspect(record: Mapping[str, Any], ident: str) -> dict[str, Any]:
    """What `docker inspect` says of a container created from its record."""
    return {
        "Id": ident, "Name": "/" + record["name"], "Image": "sha256:" + record["image"],
        "RestartCount": 0,
        "State": {"Status": "running", "ExitCode": 0, "StartedAt": STARTED,
                  "Health": {"Status": "healthy"} if record["healthcheck"] else None},
        "Config": {"Image": record["image"], "Cmd": record["command"] or ["serve"],
                   "Env": [f"{k}={v}" for k, v in record["env"].items()] + IMAGE_ENV,
                   "Labels": record["labels"]},
        "HostConfig": {"DeviceRequests": [{"Driver": "nvidia", "DeviceIDs": r["device_ids"]}
                                          for r in record["device_requests"]],
                       "LogConfig": {"Type": record["log_driver"], "Config": record["log_options"]}},
        "LogPath": f"/var/lib/docker/containers/{ident}/{ident}-json.log",
    }


def healthy(stack: Stack) -> dict[str, Any]:
    """The observation playbooks/status.yml makes of a stack running exactly as its data says."""
    observed: dict[str, Any] = {}
    for host, view in stack["by_host"].items():
        if not (view["vllm_instances"] or view["ollama_instances"] or view["gateway"]):
            continue
        records = [i["container"] for i in [*view["vllm_instances"], *view["ollama_instances"]]]
        containers = [inspect(r, f"id-{r['name']}") for r in records]
        probes: dict[str, Any] = {}
        for i in view["vllm_instances"]:
            probes[i["name"]] = {
                "models": {"data": [{"id": i["served_model_name"]}]},
                "metrics": (f'vllm:num_requests_running{{model_name="{i["served_model_name"]}"}} 2.0\n'
                            f'vllm:num_requests_waiting{{model_name="x"}} 1.0\n'
                            'vllm:kv_cache_usage_perc{model_name="x"} 0.25\n')}
        for o in view["ollama_instances"]:
            probes[o["name"]] = {"ps": {"models": [{"name": "bge-m3:latest"}]}}
        gateway = GATEWAY if view["gateway"] else []
        for name in gateway:
            containers.append({"Id": f"id-{name}", "Name": "/" + name, "Image": "sha256:nginx",
                               "RestartCount": 0,
                               "State": {"Status": "running", "StartedAt": STARTED},
                               "Config": {"Image": stack["gateway"]["image"], "Env": [], "Labels": {}},
                               "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {}}},
                               "LogPath": f"/var/lib/docker/containers/id-{name}/id-{name}-json.log"})
        observed[host] = {
            "containers": containers,
            "images": [{"Id": c["Image"], "Config": {"Env": IMAGE_ENV}} for c in containers],
            "log_files": [{"path": f"/var/lib/docker/containers/{c['Id']}/{c['Id']}-json.log", "size": 1000}
                          for c in containers]
            + [{"path": f"/var/lib/docker/containers/{c['Id']}/{c['Id']}-json.log.1", "size": 24}
               for c in containers],
            "gpus": "".join(f"{g}, 15000 MiB, 32768 MiB, 37 %\n" for g in view["gpus"]),
            "probes": probes,
            "gateway_containers": gateway,
            "drained": {"drained": []},
            "gateway_health": {"time": 1, "down": {}},
            "firewall": "active",
            "boot_unit": "active enabled",
            "monitoring_units": {"prometheus-node-exporter": "active"},
        }
    return observed


def container(observed: dict[str, Any], host: str, name: str) -> dict[str, Any]:
    return next(c for c in observed[host]["containers"] if c["Name"] == "/" + name)


def test_a_stack_as_its_data_says_is_healthy(stack: Stack) -> None:
    report = status_report(stack, healthy(stack), NOW)
    assert report["problems"] == []
    assert report["healthy"]
    assert [r["instance"] for r in report["instances"]] == [
        "llama-gpu0-0", "llama-gpu0-1", "llama-gpu1-0", "llama-gpu1-1", "qwen-gpu2", "bge-gpu0", "bge-gpu1"]
    row = report["instances"][0]
    assert (row["state"], row["health"], row["pool_state"], row["model"]) == (
        "running", "healthy", "serving", "llama3.1-8b")
    assert (row["running"], row["waiting"], row["kv_cache"], row["uptime_s"], row["log_bytes"]) == (
        2.0, 1.0, 0.25, 90, 1024)
    assert report["instances"][-1]["model"] == "bge-m3"
    assert [(g["host"], g["gpu"], g["memory_used_mib"], g["utilization_pct"]) for g in report["gpus"]] == [
        ("mx-embed-01", 0, 15000, 37), ("mx-embed-01", 1, 15000, 37),
        ("mx-llm-01", 0, 15000, 37), ("mx-llm-01", 1, 15000, 37), ("mx-llm-01", 2, 15000, 37)]
    assert [g["container"] for g in report["gateway"]] == GATEWAY


def test_a_stopped_container_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    stopped = container(observed, "mx-llm-01", "vllm_llama_gpu1_0")
    stopped["State"] = {"Status": "exited", "ExitCode": 137, "StartedAt": STARTED}
    report = status_report(stack, observed, NOW)
    assert report["problems"] == [
        "mx-llm-01: instance llama-gpu1-0 (container vllm_llama_gpu1_0) is exited (exit code 137)"]
    row = next(r for r in report["instances"] if r["instance"] == "llama-gpu1-0")
    assert (row["health"], row["pool_state"], row["uptime_s"]) == ("-", "failing", None)


def test_a_missing_container_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-embed-01"]["containers"] = [
        c for c in observed["mx-embed-01"]["containers"] if c["Name"] != "/ollama_bge_gpu1"]
    report = status_report(stack, observed, NOW)
    assert report["problems"] == ["mx-embed-01: instance bge-gpu1 (container ollama_bge_gpu1) is missing"]


def test_another_image_is_named_with_both_references(stack: Stack) -> None:
    observed = healthy(stack)
    container(observed, "mx-llm-01", "vllm_qwen_gpu2")["Config"]["Image"] = "vllm/vllm-openai:v0.20.0"
    report = status_report(stack, observed, NOW)
    assert report["problems"] == [
        "mx-llm-01: instance qwen-gpu2 (container vllm_qwen_gpu2) runs image vllm/vllm-openai:v0.20.0, "
        "the data says vllm/vllm-openai:v0.19.1"]


def test_a_command_env_or_gpu_changed_by_hand_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    changed = container(observed, "mx-llm-01", "vllm_llama_gpu0_0")
    changed["Config"]["Cmd"] = [*changed["Config"]["Cmd"], "--enforce-eager"]
    changed["Config"]["Env"] = [e for e in changed["Config"]["Env"] if not e.startswith("NCCL_P2P_DISABLE=")]
    changed["Config"]["Env"] += ["HF_HUB_OFFLINE=0", "CUDA_LAUNCH_BLOCKING=1"]
    changed["HostConfig"]["DeviceRequests"][0]["DeviceIDs"] = ["1"]
    where = "mx-llm-01: instance llama-gpu0-0 (container vllm_llama_gpu0_0)"
    assert status_report(stack, observed, NOW)["problems"] == [
        f"{where} runs command with --enforce-eager (against the data)",
        f"{where} has HF_HUB_OFFLINE=0 in its environment, the data says HF_HUB_OFFLINE=1",
        f"{where} has no NCCL_P2P_DISABLE in its environment, the data says NCCL_P2P_DISABLE=1",
        f"{where} has CUDA_LAUNCH_BLOCKING=1 in its environment, set neither by the data nor by its image",
        f"{where} runs on GPU 1, the data says 0",
    ]


def test_the_images_own_environment_is_not_drift(stack: Stack) -> None:
    observed = healthy(stack)
    assert any("PYTHONUNBUFFERED=1" in c["Config"]["Env"] for c in observed["mx-llm-01"]["containers"])
    assert status_report(stack, observed, NOW)["problems"] == []


def test_an_extra_labelled_container_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    extra = copy.deepcopy(container(observed, "mx-llm-01", "vllm_qwen_gpu2"))
    extra.update(Id="id-extra", Name="/vllm_qwen_test")
    observed["mx-llm-01"]["containers"].append(extra)
    assert status_report(stack, observed, NOW)["problems"] == [
        "mx-llm-01: container vllm_qwen_test (memoryx.role=vllm) is not in the data"]


def test_a_member_left_drained_is_named_and_shown(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-embed-01"]["drained"] = {"drained": ["llama-gpu0-1"]}
    report = status_report(stack, observed, NOW)
    assert report["problems"] == [
        "mx-embed-01: gateway member llama-gpu0-1 is left drained "
        "(playbooks/restart_vllm.yml undrains it when its instance is back)"]
    assert next(r for r in report["instances"] if r["instance"] == "llama-gpu0-1")["pool_state"] == "drained"


def test_a_member_the_gateway_probes_as_down_is_failing(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-embed-01"]["gateway_health"] = {"time": 1, "down": {"qwen-gpu2": 1}}
    report = status_report(stack, observed, NOW)
    assert next(r for r in report["instances"] if r["instance"] == "qwen-gpu2")["pool_state"] == "failing"


def test_an_inactive_firewall_unit_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-llm-01"]["firewall"] = "inactive"
    assert status_report(stack, observed, NOW)["problems"] == [
        "mx-llm-01: the backend firewall unit is inactive: the instances' ports are open to the whole LAN"]


@pytest.mark.parametrize("state", ["inactive enabled", "active disabled", ""])
def test_a_boot_unit_that_will_not_order_the_next_boot_is_named(stack: Stack, state: str) -> None:
    observed = healthy(stack)
    observed["mx-llm-01"]["boot_unit"] = state
    assert status_report(stack, observed, NOW)["problems"] == [
        f"mx-llm-01: the boot unit memoryx-boot is {state or 'not found'}: at the next reboot Docker "
        "starts its containers at once, not in waves (site.yml installs, enables and starts it)"]


def test_a_stopped_monitoring_unit_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-embed-01"]["monitoring_units"] = {"mtail": "active", "memoryx-mtail-relay": "inactive",
                                                   "prometheus": "failed"}
    assert status_report(stack, observed, NOW)["problems"] == [
        "mx-embed-01: monitoring unit memoryx-mtail-relay is inactive: this host's metrics or alerts"
        " are missing (site.yml starts it)",
        "mx-embed-01: monitoring unit prometheus is failed: this host's metrics or alerts are missing"
        " (site.yml starts it)"]


def test_an_instance_that_does_not_serve_its_model_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-llm-01"]["probes"]["llama-gpu1-1"] = {}
    observed["mx-embed-01"]["probes"]["bge-gpu0"] = {"ps": {"models": []}}
    report = status_report(stack, observed, NOW)
    assert report["problems"] == [
        "mx-llm-01: instance llama-gpu1-1 (container vllm_llama_gpu1_1) is not serving: it does not serve llama3.1-8b",
        "mx-embed-01: instance bge-gpu0 (container ollama_bge_gpu0) is not serving: it does not serve bge-m3",
    ]


def test_an_unhealthy_container_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    container(observed, "mx-llm-01", "vllm_llama_gpu0_1")["State"]["Health"] = {"Status": "unhealthy"}
    assert status_report(stack, observed, NOW)["problems"] == [
        "mx-llm-01: instance llama-gpu0-1 (container vllm_llama_gpu0_1) is unhealthy"]


def test_a_host_not_reached_is_named_and_a_limit_reads_fewer(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-llm-01"] = None
    report = status_report(stack, observed, NOW)
    assert report["problems"] == ["mx-llm-01: not reached: nothing on it could be checked"]
    assert {r["host"] for r in report["instances"]} == {"mx-embed-01"}
    del observed["mx-llm-01"]
    assert status_report(stack, observed, NOW)["healthy"]


def test_nvidia_smi_failing_or_missing_a_gpu_is_named(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-embed-01"]["gpus"] = "0, 900 MiB, 24576 MiB, [N/A]\n"
    observed["mx-llm-01"].update(gpus="", gpus_error="NVIDIA-SMI has failed")
    report = status_report(stack, observed, NOW)
    assert report["problems"] == [
        "mx-embed-01: GPU 1 of the data is not listed by nvidia-smi",
        "mx-llm-01: nvidia-smi did not answer: NVIDIA-SMI has failed"]
    assert report["gpus"] == [{"host": "mx-embed-01", "gpu": 0, "memory_used_mib": 900,
                               "memory_total_mib": 24576, "utilization_pct": None}]


def test_probe_results_keep_what_answered() -> None:
    instance = {"name": "llama-gpu0-0"}
    results = [
        {"item": [instance, "/v1/models"], "status": 200, "json": {"data": []}},
        {"item": [instance, "/metrics"], "status": 200, "content": "vllm:x 1\n"},
        {"item": [{"name": "bge-gpu0"}, "/api/ps"], "status": -1, "msg": "Connection refused"},
    ]
    assert probe_results(results) == {"llama-gpu0-0": {"models": {"data": []}, "metrics": "vllm:x 1\n"},
                                      "bge-gpu0": {}}


def test_the_table_lists_rows_and_every_problem(stack: Stack) -> None:
    observed = healthy(stack)
    observed["mx-llm-01"]["firewall"] = "failed"
    lines = format_status(status_report(stack, observed, NOW))
    assert lines[0] == "MemoryX stack status at 2026-11-27T12:00:00+00:00: 1 problem(s)"
    header = lines[2].split()
    assert header[:5] == ["instance", "host", "gpu", "container", "state"]
    row = next(line for line in lines if line.startswith("llama-gpu0-0"))
    assert row.split()[4:8] == ["running", "healthy", "0", "1m30s"]
    assert "llama: serving" in row and "25%" in row and "1.0 KiB" in row
    assert lines[-1] == (" - mx-llm-01: the backend firewall unit is failed: the instances' ports "
                         "are open to the whole LAN")
    assert any(line.split()[:2] == ["mx-llm-01", "2"] and line.endswith("37%") for line in lines)


def test_log_files_are_searched_where_each_driver_keeps_them(stack: Stack) -> None:
    observed = healthy(stack)
    containers = observed["mx-embed-01"]["containers"]
    local = container(observed, "mx-embed-01", "ollama_bge_gpu0")
    local["HostConfig"]["LogConfig"]["Type"] = "local"
    local["HostnamePath"] = "/srv/docker/containers/id-ollama_bge_gpu0/hostname"  # another Docker root
    search = log_search(containers)
    assert "/srv/docker/containers/id-ollama_bge_gpu0/local-logs" in search["paths"]
    assert "/var/lib/docker/containers/id-memoryx_gateway" in search["paths"]
    assert search["patterns"] == sorted({f"id-{name}-json.log*" for name in
                                         ["ollama_bge_gpu1", "memoryx_gateway", "memoryx_gateway_router"]}
                                        | {"container.log*"})
    observed["mx-embed-01"]["log_files"] += [
        {"path": "/srv/docker/containers/id-ollama_bge_gpu0/local-logs/container.log", "size": 700},
        {"path": "/srv/docker/containers/id-ollama_bge_gpu0/local-logs/container.log.1.gz", "size": 70}]
    report = status_report(stack, observed, NOW)
    assert next(r for r in report["instances"] if r["instance"] == "bge-gpu0")["log_bytes"] == 770
    assert next(r for r in report["instances"] if r["instance"] == "bge-gpu1")["log_bytes"] == 1024
