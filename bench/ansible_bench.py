#!/usr/bin/env python3
"""Ansible-side benchmark (prints figures; not a test). Bounded; contacts only the lab.

(a) layouts: generated layouts of N LLM hosts (8 V100 each, 2 Llama instances per GPU) plus the
    embedding/gateway host; times the controller-side work on them: the preflight (the stack
    built and validated once), the plan, and every host's role inputs (playbooks/plan.yml's
    per-host play, `debug` only: no host is contacted). The cost should grow linearly.
(b) lab: a fresh deploy of site.yml on new lab hosts, then a no-change re-run and a no-change
    --check; their times, their ratios to the deploy, and the slowest roles of a no-change run.
    Needs the Docker engine and the lab images (`lab/lab.sh images`); it replaces any running lab.

Run: .venv/bin/python bench/ansible_bench.py [--layouts 1,10,40] [--lab] [--no-figures]
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.figures import write_section  # noqa: E402
from tests.ansible_env import ansible_env  # noqa: E402

GPUS_PER_HOST = 8
PER_GPU = 2
# A key for the generated layouts' gateway (the preflight requires one); never used.
KEYS = {"vault_memoryx_gateway_api_keys": [{"name": "bench", "key": "bench-key-not-a-secret-0000"}]}


def layout(hosts: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inventory, extra vars) of `hosts` LLM hosts; addresses in TEST-NET-2 (never contacted)."""
    data = yaml.safe_load((ROOT / "group_vars" / "all" / "memoryx.yml").read_text())
    gpu_hosts = {"mx-embed-01": data["memoryx_gpu_hosts"]["mx-embed-01"]}
    llm: dict[str, Any] = {}
    for number in range(hosts):
        name = f"mx-llm-{number + 1:02d}"
        gpu_hosts[name] = {
            "gpus": [{"index": i, "name": "Tesla V100-SXM2-32GB", "memory_gib": 32}
                     for i in range(GPUS_PER_HOST)],
            "vllm_instances": {i: [{"name": f"llama-{number + 1:02d}-gpu{i}-{k}",
                                    "profile": "llama3.1-8b", "port": 11401 + PER_GPU * i + k}
                                   for k in range(PER_GPU)] for i in range(GPUS_PER_HOST)},
        }
        llm[name] = {"ansible_host": f"198.51.100.{number + 1}"}
    gateway = copy.deepcopy(data["memoryx_gateway"])
    gateway["routes"] = [r for r in gateway["routes"] if r.get("pool") != "qwen"]
    profiles = {"llama3.1-8b": data["memoryx_vllm_profiles"]["llama3.1-8b"]}
    inventory = {"all": {"children": {
        "controller": {"hosts": {"localhost": {"ansible_connection": "local",
                                               "ansible_python_interpreter": sys.executable}}},
        "gpu_hosts": {"children": {
            "llm_hosts": {"hosts": llm},
            "embedding_hosts": {"hosts": {"mx-embed-01": {"ansible_host": "198.51.100.200"}}}}},
        "gateway_hosts": {"hosts": {"mx-embed-01": None}},
    }}}
    extra = {"memoryx_gpu_hosts": gpu_hosts, "memoryx_gateway": gateway,
             "memoryx_vllm_profiles": profiles, **KEYS}
    return inventory, extra


def run_checked(argv: list[str], label: str, timeout: int, **env: str) -> str:
    """Run a command from the repository root in the project's Ansible environment; its stdout,
    or RuntimeError with the tail of its output."""
    run = subprocess.run(argv, cwd=ROOT, env={**ansible_env(), **env}, text=True, capture_output=True,
                         timeout=timeout, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}")
    return run.stdout


def timed_playbook(folder: Path, playbook: str, *args: str) -> float:
    start = time.monotonic()
    run_checked([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(folder / "hosts.yml"),
                 "-e", f"@{folder / 'layout.yml'}", *args, str(ROOT / playbook)], playbook, 1800)
    return time.monotonic() - start


def bench_layouts(sizes: list[int]) -> str:
    lines = [f"{'LLM hosts':>9}  {'instances':>9}  {'preflight s':>11}  {'plan + role inputs s':>20}"
             f"  {'per instance ms':>15}"]
    for hosts in sizes:
        with tempfile.TemporaryDirectory(prefix="memoryx-bench-") as tmp:
            folder = Path(tmp)
            inventory, extra = layout(hosts)
            (folder / "hosts.yml").write_text(yaml.safe_dump(inventory))
            (folder / "layout.yml").write_text(json.dumps(extra))
            instances = hosts * GPUS_PER_HOST * PER_GPU
            preflight = timed_playbook(folder, "playbooks/preflight.yml")
            plan = timed_playbook(folder, "playbooks/plan.yml")
        lines.append(f"{hosts:>9}  {instances:>9}  {preflight:>11.1f}  {plan:>20.1f}"
                     f"  {1000 * plan / instances:>15.1f}")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def bench_lab() -> str:
    def sh(*argv: str, **env: str) -> str:
        return run_checked(list(argv), " ".join(argv), 1200, **env)

    playbook = str(Path(sys.executable).parent / "ansible-playbook")

    def timed_site(*args: str) -> float:
        start = time.monotonic()
        sh(playbook, "site.yml", *args)
        return time.monotonic() - start

    sh("lab/lab.sh", "down")
    sh("lab/lab.sh", "up")
    sh("lab/vault.sh")
    deploy = timed_site()
    rerun = timed_site()
    check = timed_site("--check")
    # A third no-change run, profiled (the callbacks' own cost kept out of the figures above).
    profile = sh(playbook, "site.yml", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_roles",
                 PROFILE_ROLES_SORT_ORDER="descending")
    return (f"fresh deploy of site.yml: {deploy:.0f} s\n"
            f"no-change re-run:         {rerun:.0f} s  ({rerun / deploy:.2f} x the deploy)\n"
            f"no-change --check:        {check:.0f} s  ({check / deploy:.2f} x the deploy)\n"
            f"slowest roles of a no-change run (ansible.posix.profile_roles):\n"
            + "\n".join(slowest_roles(profile, 8)))


def slowest_roles(output: str, count: int) -> list[str]:
    """The first `count` lines of profile_roles' table (already sorted, slowest first)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("=" * 20)]
    table = lines[starts[-1] + 1:] if starts else []
    rows = [line.strip() for line in table if " -" in line and line.strip()[-1:] == "s"]
    return ["  " + row for row in rows[:count]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layouts", default="1,10,40", help="LLM host counts, comma-separated")
    parser.add_argument("--lab", action="store_true", help="also time a fresh lab deploy and a re-run")
    parser.add_argument("--no-figures", action="store_true", help="do not write docs/figures.md")
    args = parser.parse_args()
    command = "python bench/ansible_bench.py " + " ".join(sys.argv[1:])
    sizes = [int(n) for n in args.layouts.split(",") if n]
    if sizes:
        print("(a) controller-side work on generated layouts (8 GPUs x 2 Llama per LLM host)")
        text = bench_layouts(sizes)
        if not args.no_figures:
            write_section("Controller work on generated layouts", command, text)
    if args.lab:
        print("(b) the lab: fresh deploy, then a no-change re-run and --check")
        text = bench_lab()
        print(text)
        if not args.no_figures:
            write_section("Lab deploy and no-change re-run", command, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
