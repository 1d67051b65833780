"""Every role's inputs, and the gateway's files, rendered by Ansible from layouts unlike the
default one: a memoryx.yml that omits every optional variable and key, and a site of its own
(three LLM hosts with other GPUs, ports and names, the gateway on a host of its own). The
preflight validates, roles.yml wires, and every input renders: nothing the preflight accepted
fails later. Each layout runs in a project of its own (group_vars beside its playbook, as
Ansible reads them); every host is local, no host is contacted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
KEYS = [{"name": "tests", "key": "tests-key-0123456789abcdef"}]
ENGINES = {image: engine for image, engine in
           yaml.safe_load((ROOT / "group_vars/all/memoryx.yml").read_text())["memoryx_engines"].items()
           if image in ("vllm/vllm-openai:v0.19.1", "ollama/ollama:0.13.0")}

MINIMAL: dict[str, Any] = {
    "memoryx_gpu_hosts": {
        "mx-llm-01": {"gpus": [{"index": 0, "name": "Tesla V100-SXM2-32GB", "memory_gib": 32}],
                      "vllm_instances": {0: [{"name": "llama-gpu0-0", "profile": "llama", "port": 11401}]}},
        "mx-embed-01": {"gpus": [{"index": 0, "name": "Tesla P40", "memory_gib": 24}],
                        "ollama_instances": {0: [{"name": "bge-gpu0", "port": 11434}]}}},
    "memoryx_vllm_profiles": {"llama": {
        "pool": "llama", "model_path": "Llama", "served_model_name": "llama3.1-8b", "weights_gib": 5.4,
        "kv_cache_kib_per_token": 128, "args": {"dtype": "half", "gpu_memory_utilization": 0.45,
                                                "max_model_len": 8192}}},
    "memoryx_ollama": {"pool": "bge", "model": "bge-m3", "embedding_dim": 1024, "memory_gib": 1.1},
    "memoryx_gateway": {"host": "mx-embed-01", "port": 11436, "routes": [
        {"path": "/v1/embeddings", "pool": "bge"}, {"path": "/v1/chat/completions", "route_by_model": True}]},
    "memoryx_images": {"vllm": "vllm/vllm-openai:v0.19.1", "ollama": "ollama/ollama:0.13.0",
                       "nginx": "nginx:1.28.0"},
    "memoryx_engines": ENGINES,
}
MINIMAL_HOSTS = {"llm_hosts": {"mx-llm-01": "10.200.0.10"}, "embedding_hosts": {"mx-embed-01": "10.200.0.65"},
                 "gateway_hosts": {"mx-embed-01": "10.200.0.65"}}

A100 = {"name": "NVIDIA A100-SXM4-80GB", "memory_gib": 80}
L4 = {"name": "NVIDIA L4", "memory_gib": 24}
UNLIKE: dict[str, Any] = {
    **MINIMAL,
    "memoryx_gpu_hosts": {
        "gpu-a": {"gpus": [{"index": 0, **A100}, {"index": 1, **A100}],
                  "vllm_instances": {0: [{"name": "chat-a0", "profile": "chat", "port": 9001},
                                         {"name": "chat-a0b", "profile": "chat", "port": 9002}],
                                     1: [{"name": "code-a1", "profile": "code", "port": 9003}]}},
        "gpu-b": {"gpus": [{"index": 0, **L4}],
                  "vllm_instances": {0: [{"name": "chat-b0", "profile": "chat", "port": 9001}]}},
        "gpu-c": {"gpus": [{"index": 0, **L4}, {"index": 1, **L4}],
                  "vllm_instances": {1: [{"name": "chat-c1", "profile": "chat", "port": 9101}]},
                  "ollama_instances": {0: [{"name": "emb-c0", "port": 9200}]}}},
    "memoryx_vllm_profiles": {
        "chat": {"pool": "chat", "model_path": "Chat-8B", "served_model_name": "chat-8b", "weights_gib": 6,
                 "kv_cache_kib_per_token": 128, "args": {"gpu_memory_utilization": 0.4, "max_model_len": 4096}},
        "code": {"pool": "code", "model_path": "org/Code-14B", "served_model_name": "code-14b", "weights_gib": 16,
                 "kv_cache_kib_per_token": 192, "args": {"gpu_memory_utilization": 0.9, "max_model_len": 16384}}},
    "memoryx_ollama": {"pool": "vectors", "model": "nomic-embed-text", "embedding_dim": 768, "memory_gib": 0.5,
                       "env": {"OLLAMA_NUM_PARALLEL": "2"}},
    "memoryx_gateway": {"host": "gw-01", "port": 8443, "auth": "required", "routes": [
        {"path": "/v1/embeddings", "pool": "vectors"}, {"path": "/v1/chat/completions", "route_by_model": True},
        {"path": "/code/", "pool": "code", "strip_prefix": True}],
        "tls": {"enabled": True, "certificate": "site_ca", "site_ca_dir": "PKI", "names": ["llm.example.lan"]}},
    "memoryx_vllm_models_dir": "/srv/models",
    "memoryx_monitoring": {"enabled": True, "host": "gw-01"},
    "memoryx_registry": {"mode": "private", "address": "registry.example.lan:5000", "username": "deploy"},
    "memoryx_image_source": "pull",
}
UNLIKE_HOSTS = {"llm_hosts": {"gpu-a": "10.200.1.1", "gpu-b": "10.200.1.2", "gpu-c": "10.200.1.3"},
                "embedding_hosts": {"gpu-c": "10.200.1.3"}, "gateway_hosts": {"gw-01": "10.200.1.9"}}

PLAYBOOK = """
- name: The project's preflight
  ansible.builtin.import_playbook: preflight.yml

- name: Render every role input of every host
  hosts: gpu_hosts:gateway_hosts
  gather_facts: false
  tasks:
    - name: Template each input of roles.yml
      ansible.builtin.set_fact:
        rendered_inputs: "{{ dict(inputs | zip(query('ansible.builtin.vars', *inputs))) }}"
      vars:
        inputs: "{{ lookup('ansible.builtin.file', playbook_dir ~ '/group_vars/all/roles.yml') | from_yaml | list }}"

- name: Render the gateway's files with the role's own render tasks
  hosts: gateway_hosts
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.import_role:
        name: nginx_unified
        tasks_from: render.yml

- name: Write what was rendered
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Every host's inputs
      ansible.builtin.copy:
        content: "{{ dict(names | zip(names | map('extract', hostvars, 'rendered_inputs'))) | to_nice_json }}"
        dest: "{{ playbook_dir }}/../inputs.json"
        mode: "0600"
      vars:
        names: "{{ (groups['gpu_hosts'] + groups['gateway_hosts']) | unique }}"
"""


def project(tmp: Path, data: dict[str, Any], groups: dict[str, dict[str, str]]) -> Path:
    """A project whose group_vars hold `data` and the project's own wiring, and an inventory of
    local hosts in `groups`; the playbooks folder links the project's preflight."""
    (tmp / "group_vars/all").mkdir(parents=True)
    (tmp / "group_vars/all/memoryx.yml").write_text(yaml.safe_dump(data).replace("PKI", str(tmp / "pki")))
    for name in ("derived.yml", "roles.yml"):
        (tmp / "group_vars/all" / name).symlink_to(ROOT / "group_vars/all" / name)
    (tmp / "playbooks").mkdir()
    (tmp / "playbooks/group_vars").symlink_to("../group_vars")
    (tmp / "playbooks/preflight.yml").symlink_to(ROOT / "playbooks/preflight.yml")
    (tmp / "playbooks/render.yml").write_text(PLAYBOOK)
    gateway = next(iter(groups["gateway_hosts"]))
    staging = {"nginx_unified_staging_dir": str(tmp / "gateway"), "nginx_unified_config_dir": str(tmp / "gateway"),
               "nginx_unified_state_dir": str(tmp / "gateway"), "nginx_unified_runtime_dir": str(tmp / "gateway")}
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"children": {
        "controller": {"hosts": {"localhost": local}},
        "gpu_hosts": {"children": {group: {"hosts": {h: {"ansible_host": a} for h, a in groups[group].items()}}
                                   for group in ("llm_hosts", "embedding_hosts")}},
        "gateway_hosts": {"hosts": {h: {"ansible_host": a} for h, a in groups["gateway_hosts"].items()}}},
        "vars": local}}
    inventory["all"]["children"]["gateway_hosts"]["hosts"][gateway].update(staging)
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp / "ansible.cfg").write_text(f"[defaults]\nroles_path = {ROOT / 'roles'}\n"
                                     f"filter_plugins = {ROOT / 'plugins/filter'}\ninterpreter_python = auto_silent\n")
    return tmp


def render(folder: Path, extra: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(folder / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("ANSIBLE_VAULT_IDENTITY_LIST", None)
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", str(folder / "hosts.yml"),
                           str(folder / "playbooks/render.yml"),
                           "-e", json.dumps({"vault_memoryx_gateway_api_keys": KEYS, **(extra or {})})],
                          cwd=folder, env=env, text=True, capture_output=True, timeout=300)


@pytest.mark.ansible
def test_a_minimal_memoryx_yml_renders_every_role_input_and_the_gateway(tmp_path: Path) -> None:
    folder = project(tmp_path, MINIMAL, MINIMAL_HOSTS)
    run = render(folder)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    inputs = json.loads((folder / "inputs.json").read_text())
    embed, llm = inputs["mx-embed-01"], inputs["mx-llm-01"]
    # the defaults the model gives what the data leaves out
    assert (embed["container_image_source"], embed["nginx_unified_auth"], embed["nginx_unified_tls"]) == (
        "pull", "required", False)
    assert embed["container_image_archive_dir"] == str(ROOT / "images")
    assert embed["nginx_unified_api_keys"] == KEYS
    assert (embed["ollama_bge_model"], int(embed["ollama_bge_embedding_dim"])) == ("bge-m3", 1024)
    assert embed["docker_engine_registry"]["mode"] == "direct" and embed["docker_engine_registry_password"] == ""
    assert [i["name"] for i in llm["vllm_instance_instances"]] == ["llama-gpu0-0"]
    assert llm["vllm_instance_instances"][0]["model_dir"] == "/data/projects/models/Llama"
    assert llm["vllm_instance_verify_unchanged"] is False
    assert "optional variables not set" in run.stdout
    assert 'memoryx_registry: {\\"mode\\": \\"direct\\"}' in run.stdout  # JSON, as the callback escapes it
    router = (folder / "gateway/router.conf").read_text()
    assert "10.200.0.10:11401" in router


@pytest.mark.ansible
def test_a_layout_unlike_the_default_renders_every_role_input_and_the_gateway(tmp_path: Path) -> None:
    folder = project(tmp_path, UNLIKE, UNLIKE_HOSTS)
    run = render(folder, {"vault_memoryx_registry_password": "tests-registry-password"})
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-3000:]
    inputs = json.loads((folder / "inputs.json").read_text())
    assert sorted(inputs) == ["gpu-a", "gpu-b", "gpu-c", "gw-01"]
    assert [i["name"] for i in inputs["gpu-a"]["vllm_instance_instances"]] == ["chat-a0", "chat-a0b", "code-a1"]
    assert inputs["gpu-a"]["vllm_instance_instances"][2]["model_dir"] == "/srv/models/org/Code-14B"
    assert [i["name"] for i in inputs["gpu-c"]["ollama_bge_instances"]] == ["emb-c0"]
    assert (inputs["gpu-c"]["ollama_bge_model"], int(inputs["gpu-c"]["ollama_bge_embedding_dim"])) == (
        "nomic-embed-text", 768)
    gateway = inputs["gw-01"]
    assert gateway["nginx_unified_listen_port"] == 8443 and gateway["nginx_unified_tls"] is True
    assert gateway["docker_engine_registry_password"] == "tests-registry-password"
    assert gateway["container_image_registry_auth"]["username"] == "deploy"
    assert sorted(gateway["nginx_unified_pools"]) == ["chat", "code", "vectors"]
    assert "llm.example.lan" in gateway["nginx_unified_tls_site_ca"]["names"]
    router = (folder / "gateway/router.conf").read_text()
    for member in ("10.200.1.1:9001", "10.200.1.1:9002", "10.200.1.2:9001", "10.200.1.3:9101",
                   "10.200.1.1:9003", "10.200.1.3:9200"):
        assert member in router
    assert (tmp_path / "pki/ca.crt").is_file()  # the site CA issued the gateway's certificate
