"""memoryx_registry: the reference each host pulls, the settings Docker cannot honour, the
password a login needs, and digests (issue 10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import StackError, build_stack
from memoryx_deploy.__main__ import load_config, main
from memoryx_deploy.inputs.engines import engine_of, read_engines
from memoryx_deploy.inputs.registry import Registry, read_registry
from memoryx_deploy.model.stack import stack_from_variables
from memoryx_deploy.operate.smoke import smoke_runs

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
GROUPS = {"llm_hosts": ["mx-llm-01"], "embedding_hosts": ["mx-embed-01"],
          "gateway_hosts": ["mx-embed-01"]}
DIGEST = "sha256:" + "ab" * 32
PRIVATE = {"mode": "private", "address": "registry.lan:5000", "username": "deploy",
           "ca_file": "/etc/memoryx/registry-ca.crt"}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


@pytest.mark.parametrize(("image", "mode", "prefix", "pulled"), [
    ("vllm/vllm-openai:v0.19.1", "direct", "", "vllm/vllm-openai:v0.19.1"),
    ("vllm/vllm-openai:v0.19.1", "mirror", "", "vllm/vllm-openai:v0.19.1"),
    ("vllm/vllm-openai:v0.19.1", "private", "", "registry.lan:5000/vllm/vllm-openai:v0.19.1"),
    ("nginx:1.28.0", "private", "", "registry.lan:5000/library/nginx:1.28.0"),
    ("nginx:1.28.0", "private", "hub/proxy", "registry.lan:5000/hub/proxy/library/nginx:1.28.0"),
    ("docker.io/ollama/ollama:0.13.0", "private", "", "registry.lan:5000/ollama/ollama:0.13.0"),
    # an image that names its own registry is pulled from there
    ("ghcr.io/org/tool:1.0", "private", "", "ghcr.io/org/tool:1.0"),
    ("localhost/tool:1.0", "private", "", "localhost/tool:1.0"),
    # a digest pins the build: the tag beside it is dropped, as Docker does
    (f"nginx:1.28.0@{DIGEST}", "direct", "", f"nginx@{DIGEST}"),
    (f"nginx@{DIGEST}", "private", "", f"registry.lan:5000/library/nginx@{DIGEST}"),
    (f"registry.lan:5000/x/y:1@{DIGEST}", "direct", "", f"registry.lan:5000/x/y@{DIGEST}"),
])
def test_the_reference_a_host_pulls(image: str, mode: str, prefix: str, pulled: str) -> None:
    address = "" if mode == "direct" else "registry.lan:5000"
    assert Registry(mode=mode, address=address, prefix=prefix).reference(image) == pulled


def test_the_lab_pushes_where_the_hosts_pull(capsys: pytest.CaptureFixture[str]) -> None:
    """lab/lab.sh asks this command where to push each image: the rule hosts pull by."""
    assert main(["pull-reference", "--registry", "10.99.0.6:5000", "nginx:1.28.0",
                 "vllm/vllm-openai:v0.20.0"]) == 0
    assert capsys.readouterr().out.split() == ["10.99.0.6:5000/library/nginx:1.28.0",
                                               "10.99.0.6:5000/vllm/vllm-openai:v0.20.0"]


def registry_problems(data: object) -> list[str]:
    problems: list[str] = []
    read_registry(problems, data)
    return problems


def test_absent_means_direct() -> None:
    problems: list[str] = []
    assert read_registry(problems, {}) == Registry()
    assert problems == []


@pytest.mark.parametrize(("data", "problem"), [
    ({"mode": "proxy"}, "registry: mode must be one of direct, mirror, private, got 'proxy'"),
    ({"address": "r:5000"}, "registry: mode direct pulls from each image's own registry: "
                            "address would be ignored; set mode mirror or private"),
    ({"mode": "private"}, "registry: mode private needs address (host[:port] of the registry)"),
    ({"mode": "mirror", "address": "https://r:5000"},
     "registry: address must be host[:port] without scheme or path, got 'https://r:5000'"),
    ({"mode": "mirror", "address": "r/v2"},
     "registry: address must be host[:port] without scheme or path, got 'r/v2'"),
    ({"mode": "mirror", "address": "r", "username": "u"},
     "registry: username: Docker sends no credentials to a registry mirror; use mode private "
     "for a registry that needs a login"),
    ({"mode": "mirror", "address": "r", "prefix": "p"},
     "registry: prefix is a path in a private registry; a mirror serves Docker Hub's paths"),
    ({"mode": "private", "address": "r", "prefix": "Hub"},
     "registry: prefix must be lowercase path components, got 'Hub'"),
    ({"mode": "private", "address": "r", "username": "u", "insecure": True},
     "registry: username with insecure: true would send the password in clear text; serve the "
     "registry over TLS (ca_file)"),
    ({"mode": "private", "address": "r", "ca_file": "ca.crt"},
     "registry: ca_file must be an absolute path on the controller, got 'ca.crt'"),
    ({"mode": "private", "address": "r", "tls": True},
     "registry: unknown key 'tls' (allowed: address, ca_file, insecure, mode, prefix, username)"),
])
def test_settings_docker_cannot_honour_are_refused(data: dict[str, Any], problem: str) -> None:
    assert problem in registry_problems(data)


def test_a_private_registry_changes_what_hosts_pull_not_what_the_data_names(
        config: dict[str, Any]) -> None:
    config["registry"] = PRIVATE
    stack = build_stack(config, ADDRESSES)
    llama = stack["vllm_instances"][0]
    assert llama["image"] == "vllm/vllm-openai:v0.19.1"  # what memoryx_engines describes
    assert llama["container"]["image"] == "registry.lan:5000/vllm/vllm-openai:v0.19.1"
    assert stack["gateway"]["image"] == "registry.lan:5000/library/nginx:1.28.0"
    assert [i["name"] for i in stack["by_host"]["mx-embed-01"]["images"]] == [
        "registry.lan:5000/ollama/ollama:0.13.0", "registry.lan:5000/library/nginx:1.28.0"]
    assert stack["registry"] == {"mode": "private", "address": "registry.lan:5000",
                                 "url": "https://registry.lan:5000", "prefix": "",
                                 "username": "deploy", "ca_file": "/etc/memoryx/registry-ca.crt",
                                 "insecure": False}
    runs = smoke_runs(stack, "mx-llm-01")
    assert {run["image"] for run in runs} == {"registry.lan:5000/vllm/vllm-openai:v0.19.1"}
    assert "registry.lan:5000/vllm/vllm-openai:v0.19.1" in runs[0]["docker_argv"]


def test_an_image_pinned_by_digest_keeps_its_engine(config: dict[str, Any]) -> None:
    config["images"]["vllm"] = f"vllm/vllm-openai:v0.19.1@{DIGEST}"
    stack = build_stack(config, ADDRESSES)
    assert stack["vllm_instances"][0]["container"]["image"] == f"vllm/vllm-openai@{DIGEST}"
    engines = read_engines([], config["engines"])
    engine = engine_of(engines, f"vllm/vllm-openai:v0.19.1@{DIGEST}")
    assert engine is not None and engine.version == "0.19.1"
    assert engine_of(engines, f"vllm/vllm-openai:v9.9@{DIGEST}") is None


def variables(config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    found = {f"memoryx_{key}": value for key, value in config.items()}
    found.update({"memoryx_image_source": "pull", "memoryx_registry_password": "",
                  "memoryx_gateway_api_keys": [{"name": "tests", "key": "tests-key-0123456789abcdef"}],
                  "memoryx_client_config_dir": "/tmp",
                  "memoryx_verify": "changed", "memoryx_image_archive_dir": "/tmp"})
    found.update(extra)
    return found


def refusals(found: dict[str, Any]) -> list[str]:
    with pytest.raises(StackError) as caught:
        stack_from_variables(found, list(found), ADDRESSES, GROUPS)
    return caught.value.problems


def test_a_login_needs_its_password_from_the_vault(config: dict[str, Any]) -> None:
    config["registry"] = PRIVATE
    assert refusals(variables(config)) == [
        "registry registry.lan:5000: username 'deploy' is set but memoryx_registry_password is "
        "empty (set vault_memoryx_registry_password in the inventory's vault)"]
    stack = stack_from_variables(variables(config, memoryx_registry_password="s3cret"),
                                 list(variables(config)), ADDRESSES, GROUPS)
    assert "s3cret" not in repr(stack)


def test_an_archive_cannot_carry_a_digest(config: dict[str, Any]) -> None:
    config["images"]["nginx"] = f"nginx@{DIGEST}"
    assert refusals(variables(config, memoryx_image_source="archive")) == [
        f"image 'nginx@{DIGEST}' is pinned by digest: an archive (memoryx_image_source: "
        "archive) cannot carry a registry digest; pin it by tag for air-gapped sites"]
    assert stack_from_variables(variables(config), list(variables(config)), ADDRESSES, GROUPS)
