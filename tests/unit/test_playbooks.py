"""Playbooks against the production inventory, on the controller alone.

Nothing here connects to a production host: plays that target them are
limited away (`--limit localhost`) or only listed (`--list-hosts`,
`--syntax-check`); the preflight, plan and client config run on localhost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible_env import ansible_env

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PROD = "inventory/production/hosts.yml"
# Production refuses a gateway without API keys (they come from its Vault), and the lab's
# registry login needs its password (lab/vault.sh makes both for the lab tier): test values.
KEYS = ["-e", json.dumps({"vault_memoryx_gateway_api_keys": [
    {"name": "tests", "key": "tests-key-0123456789abcdef"}],
    "vault_memoryx_registry_password": "tests-registry-password"})]
PLAYBOOKS = [
    "site.yml",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "playbooks").glob("*.yml")),
]


def ansible_playbook(*args: str) -> subprocess.CompletedProcess[str]:
    env = ansible_env()
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
    preflight = next(p for p in plays if "Preflight - build" in p)
    services = next(p for p in plays if "Services - each host" in p)
    verify_llm = next(p for p in plays if "Verify - every instance" in p)
    verify_gateway = next(p for p in plays if "Verify - the gateway" in p)
    assert "localhost" in preflight and "mx-" not in preflight
    assert "mx-llm-01" in services and "mx-embed-01" in services
    assert "mx-llm-01" in verify_llm and "mx-embed-01" not in verify_llm
    assert "mx-embed-01" in verify_gateway and "mx-llm-01" not in verify_gateway


@pytest.mark.parametrize("entry", ["site.yml", "playbooks/client_config.yml"])
def test_group_vars_reach_top_level_and_subfolder_playbooks(entry: str, tmp_path: Path) -> None:
    """group_vars/ must be seen by site.yml's imports and by playbooks/*.yml run directly."""
    run = ansible_playbook(
        "-i", PROD, entry, "--limit", "localhost", "-e", f"memoryx_client_config_dir={tmp_path}", *KEYS
    )
    assert run.returncode == 0, run.stdout + run.stderr
    client = json.loads((tmp_path / "config.json").read_text())
    assert client["qwen"]["base_url"].startswith("https://192.168.31.65:11436")
    assert client["qwen"]["model"] == "qwen2.5-14b"


def test_plan_prints_every_gpu() -> None:
    run = ansible_playbook("-i", PROD, "playbooks/plan.yml", *KEYS)
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
    run = ansible_playbook("-i", PROD, "site.yml", "--limit", "localhost", "-e", f"@{bad}", *KEYS)
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

    plan = ansible_playbook("-i", PROD, "playbooks/plan.yml", "-e", f"@{layout}", *KEYS)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    gpu2 = next(line for line in plan.stdout.splitlines() if "mx-llm-01" in line and "qwen-gpu2" in line)
    assert "llama-gpu0-1" in gpu2 and "0.95" in gpu2
    assert any("mx-embed-01" in line and "bge-gpu2" in line and "11437" in line for line in plan.stdout.splitlines())

    # What each host's roles receive (group_vars/all/roles.yml): plan.yml's per-host play.
    embed = plan.stdout[plan.stdout.index("ok: [mx-embed-01]"):]
    assert "ollama: ollama_bge_gpu0, ollama_bge_gpu1, ollama_bge_gpu2;" in " ".join(embed.split())


def sandbox_inventory(tmp_path: Path) -> Path:
    """Production's inventory with its hosts on closed loopback ports: were the preflight to let
    a run through, nothing could be reached (and no production address is ever contacted)."""
    folder = tmp_path / "inventory"
    folder.mkdir()
    text = (ROOT / PROD).read_text()
    text = text.replace("192.168.31.10", "127.0.0.10").replace("192.168.31.65", "127.0.0.65")
    text = text.replace("    ansible_user: root", "    ansible_user: root\n    ansible_port: 9")
    assert "192.168.31" not in text and "ansible_port: 9" in text
    (folder / "hosts.yml").write_text(text)
    return folder


def refused_before_any_host(inventory: Path, *extra: str) -> str:
    run = ansible_playbook("-i", str(inventory / "hosts.yml"), "site.yml", *KEYS, *extra)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert "PLAY [Docker hosts" not in out  # the run stopped in the preflight
    return out


def test_a_variable_overridden_for_one_group_is_refused(tmp_path: Path) -> None:
    inventory = sandbox_inventory(tmp_path)
    (inventory / "group_vars" / "gateway_hosts").mkdir(parents=True)
    (inventory / "group_vars" / "gateway_hosts" / "main.yml").write_text(
        "memoryx_gateway:\n  host: mx-embed-01\n  port: 11500\n  routes: []\n")
    out = refused_before_any_host(inventory)
    assert ("variable memoryx_gateway is set for inventory group gateway_hosts only "
            f"({(inventory / 'group_vars/gateway_hosts/main.yml').resolve()}): the controller "
            "would validate and plan one stack while gateway_hosts deploys another; set it for "
            "all hosts (group_vars/all)") in out


def test_a_host_outside_its_group_is_refused(tmp_path: Path) -> None:
    inventory = sandbox_inventory(tmp_path)
    hosts = inventory / "hosts.yml"
    data = yaml.safe_load(hosts.read_text())
    children = data["all"]["children"]["gpu_hosts"]["children"]
    children["other_hosts"] = {"hosts": children["llm_hosts"].pop("hosts")}
    hosts.write_text(yaml.safe_dump(data))
    out = refused_before_any_host(inventory)
    assert ("mx-llm-01 runs vllm instances llama-gpu0-0, llama-gpu0-1, llama-gpu1-0, llama-gpu1-1, "
            "qwen-gpu2 but is not in inventory group llm_hosts (it has no hosts)") in out


def test_a_misspelt_variable_is_refused_by_name(tmp_path: Path) -> None:
    inventory = sandbox_inventory(tmp_path)
    out = refused_before_any_host(inventory, "-e", "memoryx_image_sorce=archive")
    assert ("variable memoryx_image_sorce is not a memoryx-deploy variable; "
            "did you mean memoryx_image_source?") in out


def test_the_lab_pulls_production_images_from_its_registry() -> None:
    """The lab keeps production's image names; its hosts pull them from the lab registry."""
    run = ansible_playbook("playbooks/plan.yml", *KEYS)
    assert run.returncode == 0, run.stdout + run.stderr
    out = " ".join(run.stdout.split())
    assert "images (pull): 10.99.0.6:5000/vllm/vllm-openai:v0.19.1;" in out
    assert ("images (pull): 10.99.0.6:5000/ollama/ollama:0.13.0, "
            "10.99.0.6:5000/library/nginx:1.28.0;") in out
    assert f"registry: private https://10.99.0.6:5000, login memoryx-lab, CA {ROOT}/" in out
    assert "memoryx-lab/" not in out.replace("login memoryx-lab", "")


def test_the_lab_registry_login_needs_the_vault_password() -> None:
    run = ansible_playbook("playbooks/plan.yml", "-e", "vault_memoryx_registry_password=")
    assert run.returncode != 0
    assert ("registry 10.99.0.6:5000: username 'memoryx-lab' is set but "
            "memoryx_registry_password is empty") in run.stdout + run.stderr
    assert "PLAY [Plan" not in run.stdout


ARCHIVES = ["-e", json.dumps({"memoryx_image_source": "archive", "memoryx_registry": {"mode": "direct"},
                              "memoryx_images": {"vllm": "memoryx-lab/vllm-sim:lab",
                                                 "ollama": "memoryx-lab/ollama-sim:lab",
                                                 "nginx": "memoryx-lab/nginx:bookworm"}})]


def test_a_missing_image_archive_is_refused_by_the_preflight(tmp_path: Path) -> None:
    run = ansible_playbook("playbooks/preflight.yml", *KEYS, *ARCHIVES,
                           "-e", f"memoryx_image_archive_dir={tmp_path}")
    assert run.returncode != 0
    assert (f"image memoryx-lab/vllm-sim:lab: archive {tmp_path}/memoryx-lab_vllm-sim_lab.tar "
            "does not exist") in run.stdout + run.stderr
