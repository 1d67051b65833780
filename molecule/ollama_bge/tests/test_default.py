"""Verify role ollama_bge: GPU pinning, one pull into the shared dir, warm-up, bindings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from memoryx_deploy import build_stack

SCENARIO = Path(__file__).resolve().parent.parent


def converge_instances() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The layout and the instances converge.yml gives the role: the same stacks, built from the
    same layout (bge-gpu0 with the gateway on this host, bge-gpu1 with it elsewhere)."""
    layout = yaml.safe_load((SCENARIO.parent / "shared" / "vars" / "layout.yml").read_text())["mxmol_layout"]
    layout["engines"] = yaml.safe_load(
        (SCENARIO.parents[1] / "group_vars" / "all" / "memoryx.yml").read_text())["memoryx_engines"]
    layout["extra_engines"] = yaml.safe_load((SCENARIO.parents[1] / "inventory" / "lab" / "group_vars" / "lab"
                                               / "engines.yml").read_text())["memoryx_extra_engines"]
    addresses = yaml.safe_load((SCENARIO / "molecule.yml").read_text())[
        "provisioner"]["inventory"]["group_vars"]["all"]["mxmol_addresses"]
    here = build_stack(layout, addresses)["by_host"]["mx-embed-01"]["ollama_instances"]
    elsewhere = build_stack({**layout, "gateway": {**layout["gateway"], "host": "mx-llm-01"}},
                            addresses)["by_host"]["mx-embed-01"]["ollama_instances"]
    return layout, [dict(item) for item in [*here[:1], *elsewhere[1:]]]


LAYOUT, INSTANCES = converge_instances()
BY_NAME = {item["name"]: item for item in INSTANCES}
MODEL = LAYOUT["ollama"]["model"]
MODELS_DIR = LAYOUT["ollama_models_dir"]
DIM = LAYOUT["ollama"]["embedding_dim"]


def inspect(host: Any, container: str) -> dict[str, Any]:
    data = json.loads(host.check_output(f"docker inspect {container}"))
    assert len(data) == 1
    return dict(data[0])


def request(host: Any, port: int, path: str, body: Any = None) -> Any:
    data = "" if body is None else f"-H 'Content-Type: application/json' -d {json.dumps(json.dumps(body))}"
    return json.loads(host.check_output(f"curl -fsS --max-time 10 {data} http://127.0.0.1:{port}{path}"))


def test_the_data_puts_one_instance_on_each_gpu() -> None:
    assert sorted(item["gpu"] for item in INSTANCES) == [0, 1]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_container_running_with_the_env_of_the_data(host: Any, name: str) -> None:
    item = BY_NAME[name]
    state = inspect(host, item["container_name"])
    assert state["State"]["Status"] == "running"
    assert state["RestartCount"] == 0
    assert state["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    env = dict(line.split("=", 1) for line in state["Config"]["Env"])
    for key, value in item["env"].items():
        assert env[key] == value


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_device_request_pins_the_gpu_of_the_data(host: Any, name: str) -> None:
    item = BY_NAME[name]
    requests = inspect(host, item["container_name"])["HostConfig"]["DeviceRequests"]
    assert len(requests) == 1
    assert requests[0]["Driver"] == "nvidia"
    assert requests[0]["DeviceIDs"] == [str(item["gpu"])]
    info = request(host, item["port"], "/sim/info")
    assert info["visible_devices"] == str(item["gpu"])


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_instances_share_the_models_dir(host: Any, name: str) -> None:
    mounts = inspect(host, BY_NAME[name]["container_name"])["Mounts"]
    assert [(m["Source"], m["Destination"]) for m in mounts] == [(MODELS_DIR, "/root/.ollama")]


def test_model_manifest_in_the_shared_dir(host: Any) -> None:
    manifest = host.file(f"{MODELS_DIR}/models/manifests/registry.ollama.ai/library/{MODEL}/latest")
    assert manifest.is_file
    layers = json.loads(manifest.content_string)["layers"]
    for layer in layers:
        assert host.file(f"{MODELS_DIR}/models/blobs/{layer['digest'].replace(':', '-')}").is_file


def test_model_pulled_exactly_once(host: Any) -> None:
    pulls = 0
    for item in INSTANCES:
        logs = host.check_output(f"docker logs {item['container_name']} 2>&1")
        pulls += logs.count("POST /api/pull")
    assert pulls == 1


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_instance_lists_the_model(host: Any, name: str) -> None:
    tags = request(host, BY_NAME[name]["port"], "/api/tags")
    assert f"{MODEL}:latest" in [m["name"] for m in tags["models"]]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_model_loaded_by_the_warm_up_and_kept(host: Any, name: str) -> None:
    loaded = request(host, BY_NAME[name]["port"], "/api/ps")["models"]
    assert [m["name"] for m in loaded] == [f"{MODEL}:latest"]
    assert loaded[0]["expires_at"].startswith("2318-")  # keep_alive -1: never unloaded


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_embed_answers_with_the_expected_dimensions(host: Any, name: str) -> None:
    reply = request(host, BY_NAME[name]["port"], "/api/embed", {"model": MODEL, "input": ["a", "b c"]})
    assert len(reply["embeddings"]) == 2
    assert [len(v) for v in reply["embeddings"]] == [DIM, DIM]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_port_published_where_the_data_says(host: Any, name: str) -> None:
    item = BY_NAME[name]
    bindings = inspect(host, item["container_name"])["HostConfig"]["PortBindings"]["11434/tcp"]
    assert sorted(b["HostIp"] for b in bindings) == sorted({item["bind_address"], "127.0.0.1"})
    assert {b["HostPort"] for b in bindings} == {str(item["port"])}


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_lan_address_reaches_only_instances_not_bound_to_loopback(host: Any, name: str) -> None:
    item = BY_NAME[name]
    result = host.run(f"curl -fsS --max-time 5 http://{item['address']}:{item['port']}/api/version")
    if item["bind_address"] == "127.0.0.1":
        assert result.rc != 0
    else:
        assert result.rc == 0, result.stderr
        assert json.loads(result.stdout)["version"]


def test_data_has_both_kinds_of_binding() -> None:
    assert {item["bind_address"] == "127.0.0.1" for item in INSTANCES} == {True, False}
