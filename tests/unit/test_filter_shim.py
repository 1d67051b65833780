"""plugins/filter/memoryx.py: the Jinja filters Ansible loads, and their errors."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import wrap_var

from memoryx_deploy import build_stack, client_config, format_plan, render_env, render_python
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.filters import plain
from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
URL = "http://192.168.31.65:11436"
GROUPS = {"llm_hosts": ["mx-llm-01"], "embedding_hosts": ["mx-embed-01"],
          "gateway_hosts": ["mx-embed-01"]}
NAMES = {"memoryx_stack", "memoryx_stack_from_variables", "memoryx_data_variables",
         "memoryx_plan", "memoryx_client_config", "memoryx_client_env", "memoryx_client_python",
         "memoryx_image_records", "memoryx_gpu_check", "memoryx_smoke_runs", "memoryx_smoke_todo",
         "memoryx_smoke_failures", "memoryx_pull_plan", "memoryx_registry_auth",
         "memoryx_daemon_json", "memoryx_running_digests", "memoryx_tls_expiry",
         "memoryx_status_report", "memoryx_status_probes", "memoryx_status_table",
         "memoryx_status_log_search", "memoryx_alert_rules", "memoryx_scrape_configs",
         "memoryx_bench_plan"}


def load_shim() -> ModuleType:
    spec = importlib.util.spec_from_file_location("memoryx_filter_shim",
                                                  ROOT / "plugins" / "filter" / "memoryx.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def filters() -> dict[str, Any]:
    return load_shim().FilterModule().filters()  # type: ignore[no-any-return]


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def test_the_shim_exposes_the_filters(filters: dict[str, Any]) -> None:
    assert set(filters) == NAMES


def test_filters_give_what_the_package_gives(filters: dict[str, Any],
                                             config: dict[str, Any]) -> None:
    stack = filters["memoryx_stack"](config, ADDRESSES)
    assert stack == build_stack(config, ADDRESSES)
    assert filters["memoryx_plan"](stack) == format_plan(stack)
    variables = {f"memoryx_{key}": value for key, value in config.items()}
    variables["vault_memoryx_gateway_api_keys"] = [{"name": "tests", "key": "tests-key-0123456789abcdef"}]
    computed = filters["memoryx_stack_from_variables"](variables, list(variables), ADDRESSES, GROUPS, {})
    site = ("deploy", "secrets", "defaults_taken")
    assert {k: v for k, v in computed.items() if k not in site} == {
        **{k: v for k, v in stack.items() if k not in site},
        "gateway": {**stack["gateway"], "api_key_names": ["tests"]}}
    assert computed["secrets"]["gateway_api_keys"] == "vault_memoryx_gateway_api_keys"
    assert "tests-key-0123456789abcdef" not in repr(computed)
    assert filters["memoryx_data_variables"](["memoryx_stack", "memoryx_images", "other"]) == [
        "memoryx_images"]
    assert filters["memoryx_image_records"](["nginx:1.28.0"]) == [
        {"name": "nginx:1.28.0", "archive": "nginx_1.28.0.tar"}]
    settings = filters["memoryx_client_config"](stack, URL)
    assert settings == client_config(stack, URL)
    assert filters["memoryx_client_env"](settings) == render_env(settings)
    assert filters["memoryx_client_python"](settings) == render_python(settings)


def test_unsafe_text_from_ansible_becomes_plain(filters: dict[str, Any],
                                                config: dict[str, Any]) -> None:
    stack = filters["memoryx_stack"](wrap_var(config), wrap_var(ADDRESSES))
    assert stack == build_stack(config, ADDRESSES)
    assert type(stack["vllm_instances"][0]["args"][1]) is str
    assert type(stack["gateway"]["address"]) is str


class LazyList(list[Any]):
    """Like Ansible's lazy containers: the stored items are only resolved on iteration."""

    def __iter__(self) -> Iterator[Any]:
        return (item.removeprefix("raw:") for item in super().__iter__())


def test_plain_copies_through_iteration() -> None:
    assert plain({"a": LazyList(["raw:x"]), 1: (True, 2.5)}) == {"a": ["x"], 1: [True, 2.5]}


def test_a_broken_layout_becomes_an_ansible_error(filters: dict[str, Any],
                                                  config: dict[str, Any]) -> None:
    config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][0][0]["port"] = "abc"
    config["gpu_hosts"]["mx-llm-01"]["vllm_instances"][3] = []
    with pytest.raises(AnsibleFilterError) as caught:
        filters["memoryx_stack"](config, ADDRESSES)
    assert caught.value.message == (
        "memoryx_stack: the stack layout has 2 problems:\n"
        " - mx-llm-01: vllm_instances names GPU 3, but the host's gpus are 0, 1, 2\n"
        " - vllm instance 'llama-gpu0-0': port must be an integer, got 'abc'")


def test_one_problem_is_singular_and_named_by_its_filter(filters: dict[str, Any],
                                                         config: dict[str, Any]) -> None:
    config["gpu_utilization_limit"] = "abc"
    with pytest.raises(AnsibleFilterError) as caught:
        filters["memoryx_stack"](config, ADDRESSES)
    assert caught.value.message == (
        "memoryx_stack: the stack layout has 1 problem:\n"
        " - memoryx_config: gpu_utilization_limit must be a number, got 'abc'")
    stack = build_stack(load_config([ROOT / "group_vars" / "all" / "memoryx.yml"]), ADDRESSES)
    with pytest.raises(AnsibleFilterError, match=r"^memoryx_client_config: .*\n - gateway_url"):
        filters["memoryx_client_config"](stack, "gateway:11436")


PLAYBOOK = """
- hosts: localhost
  connection: local
  gather_facts: false
  vars_files: [{root}/group_vars/all/memoryx.yml]
  vars:
    config:
      gpu_hosts: "{{{{ memoryx_gpu_hosts }}}}"
      vllm_profiles: "{{{{ memoryx_vllm_profiles }}}}"
      vllm_env: "{{{{ memoryx_vllm_env }}}}"
      ollama: "{{{{ memoryx_ollama }}}}"
      gateway: "{{{{ memoryx_gateway }}}}"
      images: "{{{{ memoryx_images }}}}"
      engines: "{{{{ memoryx_engines }}}}"
      gpu_utilization_limit: "{{{{ memoryx_gpu_utilization_limit }}}}"
      vllm_overhead_gib: "{{{{ memoryx_vllm_overhead_gib }}}}"
      vllm_models_dir: "{{{{ memoryx_vllm_models_dir }}}}"
      ollama_models_dir: "{{{{ memoryx_ollama_models_dir }}}}"
    addresses: {{mx-llm-01: 10.99.0.10, mx-embed-01: 10.99.0.65}}
    memoryx_stack: "{{{{ config | memoryx_stack(addresses) }}}}"
  tasks:
    - ansible.builtin.debug:
        msg: "members={{{{ memoryx_stack.pools.llama.members | map(attribute='name')
                | join(',') }}}}"
    - ansible.builtin.debug:
        msg: "{{{{ memoryx_stack | memoryx_client_config('http://10.99.0.65:11436')
                | memoryx_client_env }}}}"
    - ansible.builtin.debug:
        msg: "{{{{ config | combine({{'vllm_overhead_gib': 'x'}}) | memoryx_stack(addresses) }}}}"
"""


@pytest.mark.ansible
def test_through_ansible_on_localhost(tmp_path: Path) -> None:
    """The lab inventory names the hosts; the play runs on localhost alone."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(root=ROOT))
    env = ansible_env()
    run = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab/hosts.yml", str(playbook)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = run.stdout + run.stderr
    assert "members=llama-gpu0-0,llama-gpu0-1,llama-gpu1-0,llama-gpu1-1" in out
    assert "MEMORYX_LLAMA_BASE_URL=http://10.99.0.65:11436/v1" in out
    assert ("memoryx_stack: the stack layout has 1 problem:\n"
            " - memoryx_config: vllm_overhead_gib must be a number, got 'x'") in out
    assert run.returncode == 2
