"""Playbooks against the production inventory, on the controller alone.

Nothing here connects to a production host: plays that target them are
limited away (`--limit localhost`) or only listed (`--list-hosts`,
`--syntax-check`); the preflight, plan and client config run on localhost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROD = "inventory/production/hosts.yml"
PLAYBOOKS = [
    "site.yml",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "playbooks").glob("*.yml")),
]


def ansible_playbook(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), *args],
        cwd=ROOT,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.parametrize("playbook", PLAYBOOKS)
@pytest.mark.parametrize("inventory", [PROD, "inventory/lab/hosts.yml"])
def test_syntax(playbook: str, inventory: str) -> None:
    run = ansible_playbook("-i", inventory, playbook, "--syntax-check")
    assert run.returncode == 0, run.stdout + run.stderr


def test_default_inventory_is_the_lab() -> None:
    run = ansible_playbook("site.yml", "--list-hosts")
    assert run.returncode == 0, run.stderr
    assert "192.168.31" not in run.stdout
    assert "mx-llm-01" in run.stdout


def test_production_hosts_in_their_groups() -> None:
    run = ansible_playbook("-i", PROD, "site.yml", "--list-hosts")
    assert run.returncode == 0, run.stderr
    plays = run.stdout.split("play #")
    llm = next(p for p in plays if "LLM hosts" in p)
    gateway = next(p for p in plays if "Gateway" in p)
    assert "mx-llm-01" in llm and "mx-embed-01" not in llm
    assert "mx-embed-01" in gateway and "mx-llm-01" not in gateway


@pytest.mark.parametrize("entry", ["site.yml", "playbooks/client_config.yml"])
def test_group_vars_reach_top_level_and_subfolder_playbooks(entry: str, tmp_path: Path) -> None:
    """group_vars/ must be seen by site.yml's imports and by playbooks/*.yml run directly."""
    run = ansible_playbook(
        "-i", PROD, entry, "--limit", "localhost", "-e", f"memoryx_client_config_dir={tmp_path}"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    client = json.loads((tmp_path / "config.json").read_text())
    assert client["qwen"]["base_url"].startswith("http://192.168.31.65:11436")
    assert client["qwen"]["model"] == "qwen2.5-14b"


def test_plan_prints_every_gpu() -> None:
    run = ansible_playbook("-i", PROD, "playbooks/plan.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    for needle in ["llama-gpu0-0", "llama-gpu1-1", "qwen-gpu2", "bge-gpu1", "11405"]:
        assert needle in run.stdout


def test_preflight_refuses_a_bad_layout_before_any_host(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "group_vars/all/memoryx.yml").read_text())
    hosts = data["memoryx_gpu_hosts"]
    moved = hosts["mx-llm-01"]["vllm_instances"][0].pop(1)
    hosts["mx-llm-01"]["vllm_instances"][2].append(moved)
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"memoryx_gpu_hosts": hosts}))
    # --limit localhost: even a preflight that wrongly passed could not reach a host.
    run = ansible_playbook("-i", PROD, "site.yml", "--limit", "localhost", "-e", f"@{bad}")
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "memoryx_stack" in out
    assert "mx-llm-01 GPU 2" in out and "llama-gpu0-1" in out and "gpu_memory_utilization" in out
    # The run stopped in the preflight play.
    assert "Client config" not in out


def test_a_group_vars_edit_is_followed_everywhere(tmp_path: Path) -> None:
    """Move a Llama instance to GPU2 and add a third Ollama instance on a new GPU, in data only."""
    data = yaml.safe_load((ROOT / "group_vars/all/memoryx.yml").read_text())
    hosts = data["memoryx_gpu_hosts"]
    moved = hosts["mx-llm-01"]["vllm_instances"][0].pop(1)
    moved["args"] = {"gpu_memory_utilization": 0.30}
    hosts["mx-llm-01"]["vllm_instances"][2][0]["args"] = {"gpu_memory_utilization": 0.65}
    hosts["mx-llm-01"]["vllm_instances"][2].append(moved)
    hosts["mx-embed-01"]["gpus"].append({"index": 2, "name": "Tesla P40", "memory_gib": 24})
    hosts["mx-embed-01"]["ollama_instances"][2] = [{"name": "bge-gpu2", "port": 11437}]
    layout = tmp_path / "layout.yml"
    layout.write_text(yaml.safe_dump({"memoryx_gpu_hosts": hosts}))

    plan = ansible_playbook("-i", PROD, "playbooks/plan.yml", "-e", f"@{layout}")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    gpu2 = next(line for line in plan.stdout.splitlines() if "mx-llm-01" in line and "qwen-gpu2" in line)
    assert "llama-gpu0-1" in gpu2 and "0.95" in gpu2
    assert any("mx-embed-01" in line and "bge-gpu2" in line and "11437" in line for line in plan.stdout.splitlines())

    # What the roles receive (group_vars/all/roles.yml), evaluated on the controller alone.
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}
    seen = subprocess.run(
        [str(BIN / "ansible"), "-i", PROD, "mx-embed-01", "--playbook-dir", "playbooks", "-e", f"@{layout}",
         "-e", "ansible_connection=local", "-m", "ansible.builtin.debug",
         "-a", json.dumps({"msg": "{{ nginx_unified_pools.bge.members | map(attribute='name') | list }}"
                                  " {{ ollama_bge_instances | map(attribute='container_name') | list }}"})],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=120,
    )
    assert seen.returncode == 0, seen.stdout + seen.stderr
    message = json.loads(seen.stdout.split("=>", 1)[1])["msg"]
    assert message == "['bge-gpu0', 'bge-gpu1', 'bge-gpu2'] ['ollama_bge_gpu0', 'ollama_bge_gpu1', 'ollama_bge_gpu2']"
