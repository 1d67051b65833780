"""Issue 12, logs that cannot fill a disk: the log driver and options of every managed container
(memoryx_containers -> records and the gateway's), their checks, and memoryx_deploy.container_logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from memoryx_deploy import StackError, build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.containers import ContainerSettings
from memoryx_deploy.operate.container_logs import LogFiles, expected_logs, log_files, size_bytes

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "group_vars" / "all" / "memoryx.yml"
LAB_DATA = ROOT / "inventory" / "lab" / "group_vars" / "lab" / "main.yml"
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
PRODUCTION = {"max-size": "50m", "max-file": "5"}
ACCESS = {"max-size": "100m", "max-file": "10"}
CID = "ab" * 32


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([DATA])


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(StackError) as caught:
        build_stack(config, ADDRESSES)
    return caught.value.problems


def records(stack: Any) -> list[Any]:
    return [i["container"] for i in [*stack["vllm_instances"], *stack["ollama_instances"]]]


def test_every_record_and_the_gateway_carry_the_production_rotation(config: dict[str, Any]) -> None:
    stack = build_stack(config, ADDRESSES)
    assert {(r["log_driver"], tuple(sorted(r["log_options"].items()))) for r in records(stack)} == {
        ("json-file", (("max-file", "5"), ("max-size", "50m")))}
    assert len(records(stack)) == 7
    assert stack["gateway"]["log"] == {"driver": "json-file", "options": PRODUCTION}
    assert stack["gateway"]["router_log"] == {"driver": "json-file", "options": ACCESS}


def test_defaults_without_data_are_the_documented_production_values(config: dict[str, Any]) -> None:
    del config["containers"]
    stack = build_stack(config, ADDRESSES)
    assert records(stack)[0]["log_options"] == PRODUCTION
    assert stack["gateway"]["router_log"]["options"] == ACCESS
    assert ContainerSettings().log() == {"driver": "json-file", "options": PRODUCTION}


def test_the_gateway_role_defaults_match_the_production_data(config: dict[str, Any]) -> None:
    defaults = yaml.safe_load((ROOT / "roles/nginx_unified/defaults/main.yml").read_text())
    gateway = build_stack(config, ADDRESSES)["gateway"]
    assert (defaults["nginx_unified_log_driver"], defaults["nginx_unified_log_options"],
            defaults["nginx_unified_router_log_options"]) == (
        gateway["log"]["driver"], gateway["log"]["options"], gateway["router_log"]["options"])


def test_the_lab_keeps_a_small_access_log() -> None:
    lab = load_config([DATA, LAB_DATA])
    del lab["registry"]  # its ca_file is a template; the containers are the point here
    stack = build_stack(lab, {"mx-llm-01": "10.99.0.10", "mx-embed-01": "10.99.0.65"})
    assert stack["gateway"]["router_log"]["options"] == {"max-size": "64k", "max-file": "3"}
    assert records(stack)[0]["log_options"] == PRODUCTION


def test_access_log_options_override_log_options_key_by_key(config: dict[str, Any]) -> None:
    config["containers"] = {"log_driver": "local", "log_options": {"max-size": "10m", "max-file": 3},
                            "access_log_options": {"max-file": "20"}}
    stack = build_stack(config, ADDRESSES)
    assert records(stack)[-1]["log_driver"] == "local"
    assert records(stack)[-1]["log_options"] == {"max-size": "10m", "max-file": "3"}  # a string
    assert stack["gateway"]["log"] == {"driver": "local",
                                       "options": {"max-size": "10m", "max-file": "3"}}
    assert stack["gateway"]["router_log"] == {"driver": "local",
                                              "options": {"max-size": "10m", "max-file": "20"}}


SIZE = "must be a Docker size, a whole number of k, m or g such as 10m or 1g, got"
FILES = "must be a whole number of files, at least 1, got"


@pytest.mark.parametrize(("settings", "message"), [
    ({"log_driver": "syslog"},
     "containers: log_driver must be one of json-file, local (a copy on the host that max-size "
     "and max-file bound; other drivers leave the bound to another system), got 'syslog'"),
    ({"log_driver": "journald"},
     "containers: log_driver must be one of json-file, local (a copy on the host that max-size "
     "and max-file bound; other drivers leave the bound to another system), got 'journald'"),
    ({"log_driver": ""}, "containers: log_driver must be a non-empty string, got ''"),
    ({"log_options": {"max-size": "10 MB", "max-file": "5"}},
     f"containers: log_options.max-size {SIZE} '10 MB'"),
    ({"log_options": {"max-size": 0, "max-file": "5"}}, f"containers: log_options.max-size {SIZE} 0"),
    ({"log_options": {"max-size": "0m", "max-file": "5"}},
     f"containers: log_options.max-size {SIZE} '0m'"),
    ({"log_options": {"max-size": "-1m", "max-file": "5"}},
     f"containers: log_options.max-size {SIZE} '-1m'"),
    ({"log_options": {"max-size": "10M", "max-file": "5"}},
     f"containers: log_options.max-size {SIZE} '10M'"),
    ({"log_options": {"max-size": "10m", "max-file": 0}}, f"containers: log_options.max-file {FILES} 0"),
    ({"log_options": {"max-size": "10m", "max-file": "-1"}},
     f"containers: log_options.max-file {FILES} '-1'"),
    ({"log_options": {"max-size": "10m", "max-file": "five"}},
     f"containers: log_options.max-file {FILES} 'five'"),
    ({"log_options": {"max-size": "10m", "max-file": True}},
     f"containers: log_options.max-file {FILES} true"),
    ({"log_options": {"max-size": "10m", "max-file": 2.5}},
     f"containers: log_options.max-file {FILES} 2.5"),
    ({"log_options": {"max-size": "10m", "max-file": "5", "compress": "true"}},
     "containers: log_options: unknown option 'compress' (allowed: max-file, max-size)"),
    ({"log_options": {"max-size": "10m"}},
     "containers: log_options must set max-size and max-file (the log's bound is their product), "
     "missing max-file"),
    ({"log_options": {}},
     "containers: log_options must set max-size and max-file (the log's bound is their product), "
     "missing max-size and max-file"),
    ({"log_options": "50m"}, "containers: log_options must be a mapping, got '50m'"),
    ({"access_log_options": {"max-size": "1 g"}},
     f"containers: access_log_options.max-size {SIZE} '1 g'"),
    ({"access_log_options": {"labels": "a"}},
     "containers: access_log_options: unknown option 'labels' (allowed: max-file, max-size)"),
])
def test_bad_log_settings_are_refused_by_name(config: dict[str, Any], settings: dict[str, Any],
                                              message: str) -> None:
    config["containers"] = settings
    assert problems(config) == [message]


def test_the_container_task_hands_the_records_log_settings_to_docker() -> None:
    task = yaml.safe_load((ROOT / "roles/docker_containers/tasks/main.yml").read_text())[0]
    module = task["community.docker.docker_container"]
    assert (module["log_driver"], module["log_options"]) == (
        "{{ item.log_driver }}", "{{ item.log_options }}")


# --- memoryx_deploy.container_logs ------------------------------------------------------------

def inspect(driver: str, options: dict[str, str], log_path: str = "",
            root: str = "/var/lib/docker") -> dict[str, Any]:
    """The fields of `docker inspect` the helper reads, as Docker 20.10 writes them."""
    return {"Id": CID, "LogPath": log_path,
            "HostnamePath": f"{root}/containers/{CID}/hostname",
            "ResolvConfPath": f"{root}/containers/{CID}/resolv.conf",
            "HostConfig": {"LogConfig": {"Type": driver, "Config": options}}}


def test_json_file_logs_are_the_log_path_and_its_rotated_copies() -> None:
    path = f"/var/lib/docker/containers/{CID}/{CID}-json.log"
    files = log_files(inspect("json-file", PRODUCTION, log_path=path))
    assert files == LogFiles(driver="json-file", directory=f"/var/lib/docker/containers/{CID}",
                             pattern=f"{CID}-json.log*", max_size=50 * 1024**2, max_file=5)
    assert files.glob == f"{path}*"
    assert files.bound == 250 * 1024**2


def test_a_container_never_started_has_no_log_path_yet() -> None:
    files = log_files(inspect("json-file", {"max-size": "64k", "max-file": "3"}, root="/srv/docker"))
    assert files is not None
    assert files.glob == f"/srv/docker/containers/{CID}/{CID}-json.log*"
    assert files.bound == 3 * 64 * 1024


def test_local_logs_are_in_the_container_folder() -> None:
    files = log_files(inspect("local", {"max-size": "1g", "max-file": "2"}, root="/data/docker"))
    assert files is not None
    assert files.glob == f"/data/docker/containers/{CID}/local-logs/container.log*"
    assert (files.max_size, files.max_file) == (1024**3, 2)


def test_the_docker_root_is_the_fallback_without_the_container_paths() -> None:
    data = inspect("local", {})
    data["HostnamePath"] = data["ResolvConfPath"] = ""
    files = log_files(data, docker_root="/mnt/docker")
    assert files is not None
    assert files.directory == f"/mnt/docker/containers/{CID}/local-logs"
    assert (files.max_size, files.max_file, files.bound) == (None, None, None)


def test_drivers_without_host_files_have_none() -> None:
    assert log_files(inspect("journald", {})) is None


@pytest.mark.parametrize(("size", "value"), [("64k", 65536), ("50m", 52428800), ("1g", 1073741824)])
def test_docker_sizes(size: str, value: int) -> None:
    assert size_bytes(size) == value


@pytest.mark.parametrize("size", ["10 MB", "0m", "10", "-1m", "1.5g"])
def test_docker_sizes_refused(size: str) -> None:
    with pytest.raises(ValueError, match="not a Docker size"):
        size_bytes(size)


def test_expected_logs_list_every_managed_container_with_its_host(config: dict[str, Any]) -> None:
    expected = expected_logs(build_stack(config, ADDRESSES), "memoryx_gateway",
                             "memoryx_gateway_router")
    assert sorted(expected) == sorted([
        "vllm_llama_gpu0_0", "vllm_llama_gpu0_1", "vllm_llama_gpu1_0", "vllm_llama_gpu1_1",
        "vllm_qwen_gpu2", "ollama_bge_gpu0", "ollama_bge_gpu1", "memoryx_gateway",
        "memoryx_gateway_router"])
    assert expected["vllm_qwen_gpu2"] == ("mx-llm-01", {"driver": "json-file", "options": PRODUCTION})
    assert expected["memoryx_gateway_router"] == ("mx-embed-01",
                                                  {"driver": "json-file", "options": ACCESS})
