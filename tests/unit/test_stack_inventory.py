"""The stack against the inventory and Ansible's variables: every disagreement refused by name.

Each test starts from the production data and inventory, breaks one thing the way a user does
(a host outside its group, a variable set for some hosts only, a misspelt variable, a YAML
error), and asserts the exact problems.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import StackError, build_stack
from memoryx_deploy.__main__ import load_config, load_variables, main
from memoryx_deploy.inputs.containers import archive_name
from memoryx_deploy.inputs.inventory import read_inventory
from memoryx_deploy.inputs.scopes import scope_problems
from memoryx_deploy.inputs.yamlcheck import yaml_problems
from memoryx_deploy.model.stack import stack_from_variables
from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "group_vars" / "all" / "memoryx.yml"
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65", "localhost": ""}
GROUPS = {"llm_hosts": ["mx-llm-01"], "embedding_hosts": ["mx-embed-01"],
          "gateway_hosts": ["mx-embed-01"]}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([DATA])


@pytest.fixture
def variables() -> dict[str, Any]:
    """The data's variables with the vault's keys beside them, as the preflight reads them."""
    return {**load_variables([DATA]),
            "vault_memoryx_gateway_api_keys": [{"name": "tests", "key": "tests-key-0123456789abcdef"}]}


def problems(config: Any, groups: Any = GROUPS, addresses: Any = ADDRESSES) -> list[str]:
    with pytest.raises(StackError) as caught:
        build_stack(config, addresses, groups)
    return caught.value.problems


def from_variables(variables: dict[str, Any]) -> list[str]:
    with pytest.raises(StackError) as caught:
        stack_from_variables(variables, list(variables), ADDRESSES, GROUPS)
    return caught.value.problems


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A copy of the production inventory, to which a test adds group_vars/host_vars."""
    folder = tmp_path / "inventory"
    folder.mkdir()
    (folder / "hosts.yml").write_text((ROOT / "inventory/production/hosts.yml").read_text())
    return folder


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def scoped(inventory: Path, groups: Any = None) -> list[str]:
    all_groups = {**GROUPS, "all": ["localhost", "mx-llm-01", "mx-embed-01"],
                  "gpu_hosts": ["mx-llm-01", "mx-embed-01"], **(groups or {})}
    return scope_problems([str(inventory)], str(ROOT / "playbooks"), all_groups)


def test_production_inventory_has_the_groups_the_data_needs(config: dict[str, Any]) -> None:
    inventory = read_inventory(ROOT / "inventory" / "production")
    assert {name: inventory.groups[name] for name in GROUPS} == GROUPS
    assert inventory.groups["gpu_hosts"] == ["mx-llm-01", "mx-embed-01"]
    build_stack(config, inventory.addresses, inventory.groups)


def test_a_vllm_host_outside_llm_hosts(config: dict[str, Any]) -> None:
    hosts = config["gpu_hosts"]
    hosts["mx-llm-02"] = {"gpus": hosts["mx-llm-01"]["gpus"],
                          "vllm_instances": {0: [{"name": "llama-b0", "profile": "llama3.1-8b",
                                                  "port": 11401}],
                                             1: [{"name": "llama-b1", "profile": "llama3.1-8b",
                                                  "port": 11402}]}}
    assert problems(config, addresses={**ADDRESSES, "mx-llm-02": "192.168.31.11"}) == [
        "mx-llm-02 runs vllm instances llama-b0, llama-b1 but is not in inventory group llm_hosts "
        "(its hosts: mx-llm-01): they would never start while the gateway routes to them; "
        "add mx-llm-02 to llm_hosts"]


def test_an_ollama_host_outside_embedding_hosts(config: dict[str, Any]) -> None:
    assert problems(config, {**GROUPS, "embedding_hosts": []}) == [
        "mx-embed-01 runs ollama instances bge-gpu0, bge-gpu1 but is not in inventory group "
        "embedding_hosts (it has no hosts): they would never start while the gateway routes to "
        "them; add mx-embed-01 to embedding_hosts"]


def test_the_gateway_host_outside_gateway_hosts(config: dict[str, Any]) -> None:
    assert problems(config, {**GROUPS, "gateway_hosts": ["mx-llm-01"]}) == [
        "gateway host mx-embed-01 (memoryx_gateway.host) is not in inventory group gateway_hosts "
        "(its hosts: mx-llm-01): nginx would deploy elsewhere while every binding and the client "
        "config point at mx-embed-01; make gateway_hosts hold mx-embed-01 alone",
        "inventory group gateway_hosts holds mx-llm-01, but the gateway runs on mx-embed-01 "
        "(memoryx_gateway.host) alone; remove mx-llm-01 from gateway_hosts"]


def test_a_vllm_pool_named_like_the_embeddings(config: dict[str, Any]) -> None:
    config["vllm_profiles"]["qwen2.5-14b"]["pool"] = "embeddings"
    config["gateway"]["routes"][6]["pool"] = "embeddings"
    assert problems(config) == [
        "pool 'embeddings': its client constants (EMBED_*) clash with those of pool 'bge'; "
        "rename the pool"]


def test_a_misspelt_variable_is_named_with_what_it_meant(variables: dict[str, Any]) -> None:
    variables["memoryx_gpu_host"] = variables.pop("memoryx_gpu_hosts")
    assert from_variables(variables) == [
        "variable memoryx_gpu_host is not a memoryx-deploy variable; did you mean memoryx_gpu_hosts?",
        "group_vars/all/memoryx.yml lacks 1 variable this release needs (README \"Upgrading\"): "
        "memoryx_gpu_hosts: the GPU hosts, keyed by inventory hostname: gpus, vllm_instances and "
        "ollama_instances per GPU index"]


def test_an_unknown_variable_far_from_any_lists_the_real_ones(variables: dict[str, Any]) -> None:
    variables["memoryx_colour"] = "blue"
    [problem] = from_variables(variables)
    assert problem.startswith("variable memoryx_colour is not a memoryx-deploy variable; "
                              "the stack's variables are memoryx_gpu_hosts, ")


def test_a_variable_set_for_one_group_only(inventory: Path) -> None:
    """memoryx_gateway overridden in an inventory group's group_vars: the gateway host would
    deploy another gateway than the one the controller validates and plans."""
    path = write(inventory / "group_vars" / "gateway_hosts" / "main.yml",
                 "memoryx_gateway: {host: mx-embed-01, port: 11500}\nmemoryx_gatway: {}\n"
                 "nginx_unified_worker_connections: 4096\n")
    assert scoped(inventory) == [
        f"variable memoryx_gatway (in {path}) is not a memoryx-deploy variable; "
        "did you mean memoryx_gateway?",
        f"variable memoryx_gateway is set for inventory group gateway_hosts only ({path}): the "
        "controller would validate and plan one stack while gateway_hosts deploys another; "
        "set it for all hosts (group_vars/all)",
        f"variable memoryx_gatway is set for inventory group gateway_hosts only ({path}): the "
        "controller would validate and plan one stack while gateway_hosts deploys another; "
        "set it for all hosts (group_vars/all)"]


def test_a_variable_in_host_vars_and_inline_host_vars(inventory: Path) -> None:
    folder_file = write(inventory / "host_vars" / "mx-llm-01" / "images.yml",
                        "memoryx_images: {vllm: 'vllm/vllm-openai:v0.20.0'}\n")
    hosts = inventory / "hosts.yml"
    hosts.write_text(hosts.read_text().replace("ansible_host: 192.168.31.65",
                                               "ansible_host: 192.168.31.65\n"
                                               "              memoryx_image_source: archive"))
    assert scoped(inventory) == [
        f"variable memoryx_images is set for host mx-llm-01 only ({folder_file}): the controller "
        "would validate and plan one stack while mx-llm-01 deploys another; set it for all hosts "
        "(group_vars/all)",
        f"variable memoryx_image_source is set for host mx-embed-01 only ({hosts.resolve()} (vars "
        "of mx-embed-01)): the controller would validate and plan one stack while mx-embed-01 "
        "deploys another; set it for all hosts (group_vars/all)"]


def test_a_group_holding_every_host_may_set_the_data(inventory: Path) -> None:
    """As the lab does: its group `lab` holds every host, the controller included."""
    write(inventory / "group_vars" / "everyone" / "main.yml", "memoryx_image_source: archive\n")
    write(inventory / "group_vars" / "all.yml", "memoryx_image_source: archive\n")
    write(inventory / "group_vars" / "gateway_hosts" / "vault.yml", "$ANSIBLE_VAULT;1.2;AES256;x\n61\n")
    write(inventory / "group_vars" / "gateway_hosts" / "nginx.yml", "nginx_unified_keepalive: 64\n")
    assert scoped(inventory, {"everyone": ["localhost", "mx-llm-01", "mx-embed-01"]}) == []


def test_the_lab_inventory_sets_its_data_for_every_host() -> None:
    inventory = read_inventory(ROOT / "inventory" / "lab" / "hosts.yml")
    assert scope_problems([str(ROOT / "inventory/lab/hosts.yml")], str(ROOT / "playbooks"),
                          inventory.groups) == []
    assert set(inventory.groups["lab"]) == set(inventory.addresses)


def test_computed_and_working_variables_are_not_typos(variables: dict[str, Any]) -> None:
    names = [*variables, "memoryx_stack", "memoryx_host", "memoryx_computed_stack",
             "memoryx_preflight_names", "memoryx_restart_queue", "memoryx_verify"]
    stack_from_variables(variables, names, ADDRESSES, GROUPS)


@pytest.mark.parametrize(("settings", "message"), [
    ({"restart_policy": "sometimes"},
     "containers: restart_policy must be one of unless-stopped, on-failure, no, got 'sometimes'"),
    ({"restart_policy": "always"},
     "containers: restart_policy 'always' makes Docker start every container at once when it "
     "starts (at boot), and two vLLM instances that share a GPU fail so; use unless-stopped (the "
     "default): Docker still restarts a container that dies, and memoryx-boot starts them in the "
     "deploy's waves at boot"),
    ({"vllm_healthcheck_interval": "10 seconds"},
     "containers: vllm_healthcheck_interval must be a duration such as 10s, 15m or 1h30m, "
     "got '10 seconds'"),
    ({"vllm_stop_timeout": 0}, "containers: vllm_stop_timeout must be at least 1, got 0"),
    ({"log_size": "10m"}, "containers: unknown key 'log_size' (allowed: access_log_options, "
     "log_driver, log_options, ollama_stop_timeout, restart_policy, vllm_healthcheck_interval, "
     "vllm_healthcheck_start_period, vllm_stop_timeout)"),
])
def test_container_settings_are_checked(config: dict[str, Any], settings: dict[str, Any],
                                        message: str) -> None:
    config["containers"] = settings
    assert problems(config) == [message]


@pytest.mark.parametrize(("image", "archive"), [
    ("vllm/vllm-openai:v0.19.1", "vllm_vllm-openai_v0.19.1.tar"),
    ("registry.lan:5000/ollama/ollama:0.13.0", "registry.lan_5000_ollama_ollama_0.13.0.tar"),
    ("nginx@sha256:abc", "nginx_sha256_abc.tar"),
])
def test_archive_names(image: str, archive: str) -> None:
    assert archive_name(image) == archive


def test_a_yaml_error_names_its_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "memoryx.yml"
    broken.write_text("memoryx_images:\n  vllm: [unclosed\n")
    assert main(["plan", "--group-vars", str(broken)]) == 1
    err = capsys.readouterr().err
    assert f"{broken}: line 3 column 1: not valid YAML" in err


def test_the_command_line_checks_the_inventory_groups(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text((ROOT / "inventory/production/hosts.yml").read_text()
                         .replace("    gateway_hosts:\n      hosts:\n        mx-embed-01:",
                                  "    gateway_hosts:\n      hosts:\n        mx-llm-01:"))
    assert main(["plan", "--inventory", str(inventory)]) == 1
    assert "gateway host mx-embed-01 (memoryx_gateway.host) is not in inventory group" in (
        capsys.readouterr().err)


def test_yaml_check_names_the_file_and_skips_vaults(tmp_path: Path) -> None:
    group_vars = tmp_path / "group_vars" / "all"
    group_vars.mkdir(parents=True)
    (group_vars / "good.yml").write_text("a: !unsafe '{{ x }}'\nb: [1, 2]\n")
    (group_vars / "vault.yml").write_text("$ANSIBLE_VAULT;1.2;AES256;lab\n6162\n")
    (tmp_path / "host_vars").mkdir()
    (tmp_path / "host_vars" / "mx-llm-01.yml").write_text("memoryx_images:\n  vllm: [unclosed\n")
    assert yaml_problems([tmp_path]) == [
        f"{tmp_path}/host_vars/mx-llm-01.yml: line 3 column 1: not valid YAML "
        "(expected ',' or ']', but got '<stream end>'); fix this file"]


@pytest.mark.ansible
def test_ansible_names_the_file_of_a_yaml_error(tmp_path: Path) -> None:
    """ansible-core alone says "YAML parsing failed" without the file; the project's vars plugin
    names it, before any play runs."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text((ROOT / "inventory/production/hosts.yml").read_text())
    (tmp_path / "group_vars" / "gateway_hosts").mkdir(parents=True)
    broken = tmp_path / "group_vars" / "gateway_hosts" / "main.yml"
    broken.write_text("memoryx_gateway:\n  port: [11436\n")
    run = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
                          "playbooks/plan.yml"], cwd=ROOT, env=ansible_env(), text=True,
                         capture_output=True, timeout=120, check=False)
    assert run.returncode != 0
    assert f"{broken}: line 3 column 1: not valid YAML" in run.stdout + run.stderr
    assert "TASK [" not in run.stdout


def test_settings_that_take_one_of_a_few_words(variables: dict[str, Any]) -> None:
    variables["memoryx_image_source"] = "registry"
    variables["memoryx_verify"] = True
    assert from_variables(variables) == [
        "variable memoryx_image_source must be one of pull, archive, got 'registry'",
        "variable memoryx_verify must be one of always, changed, never, got true"]
