"""playbooks/bench.yml against the lab (issue 12): the design document's benchmark through the
deployed gateway, per pool. It prints the document's table, writes the raw numbers and the chart
to docs/bench/ (the README shows that chart) and its table to docs/figures.md.

The figure asserted, the Llama pool through the gateway at least 3.5x one instance serially, holds
at the lab simulators' settings, which the run reports and this test pins: vLLM simulator TTFT
30 ms, TPOT 5 ms per output token, each decode step 6 % longer per other sequence in the batch,
--max-num-seqs 16 (the profile's), max_tokens 64."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from labkit import EMBED_HOST, ROOT, PlaybookRun, on_host, run_playbook

from bench.figures import write_section
from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.inventory import inventory_addresses

OUTPUT = ROOT / "docs/bench"
COMMAND = "ansible-playbook playbooks/bench.yml -e bench_output_dir=docs/bench"
SIMULATOR = {"simulator": "vllm", "ttft_ms": 30.0, "tpot_ms": 5.0, "batch_cost": 0.06, "max_num_seqs": 16}
LEVELS = [1, 2, 4, 8, 16]  # the playbook's defaults: this is the documented command's run


def lab_pools() -> dict[str, list[str]]:
    """Every pool of the lab's stack and its members, computed here from the data."""
    config = load_config([ROOT / "group_vars/all/memoryx.yml"])
    stack = build_stack(config, inventory_addresses(ROOT / "inventory/lab"))
    return {name: [m["name"] for m in pool["members"]] for name, pool in stack["pools"].items()}


@pytest.fixture(scope="module")
def bench_run(deployed: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[PlaybookRun, dict[str, Any]]:
    started = time.time()
    run = run_playbook("playbooks/bench.yml", tmp_path_factory.mktemp("bench"),
                       extravars={"bench_output_dir": str(OUTPUT)})
    assert run.rc == 0, "\n".join(run.failures())
    document: dict[str, Any] = json.loads((OUTPUT / "bench.json").read_text())
    assert all((OUTPUT / name).stat().st_mtime >= started for name in ("bench.json", "bench.md", "bench.png"))
    write_section("Benchmark (playbooks/bench.yml)", COMMAND, (OUTPUT / "bench.md").read_text())
    return run, document


def task_results(run: PlaybookRun, task: str) -> list[Mapping[str, Any]]:
    return [result.res for result in run.results(task)]


def test_the_table_is_printed(bench_run: tuple[PlaybookRun, dict[str, Any]]) -> None:
    run, _ = bench_run
    [shown] = task_results(run, "Show the table")
    lines = shown["msg"]
    assert "| mode | requests | failed | seconds | QPS | speed-up |" in lines
    assert any(line.startswith("| llama-gpu0-0 alone, serial | 10 | 0 |") for line in lines)
    assert any(line.startswith("| gateway, 16 concurrent | 16 | 0 |") for line in lines)
    assert "failed requests: 0" in lines


def test_progress_names_every_run(bench_run: tuple[PlaybookRun, dict[str, Any]]) -> None:
    run, _ = bench_run
    labels = [result.item_label for result in run.results(
        "Run each instance alone, then the gateway at each concurrency", kinds=("runner_item_on_ok",))]
    assert labels[0] == "llama: llama-gpu0-0 alone, 10 serial"
    assert "bge: gateway, 16 requests at 16 concurrent" in labels
    assert len(labels) == sum(len(members) + len(LEVELS) for members in lab_pools().values())


def test_every_pool_and_member_of_the_stack_was_measured(bench_run: tuple[PlaybookRun, dict[str, Any]]) -> None:
    _, document = bench_run
    pools = lab_pools()
    assert set(document["pools"]) == set(pools)
    for name, members in pools.items():
        runs = document["pools"][name]["runs"]
        assert [r["member"] for r in runs if r["mode"] == "serial"] == members
        assert [r["concurrency"] for r in runs if r["mode"] == "gateway"] == LEVELS
        assert all(r["url"].startswith("https://10.99.0.65:11436/") for r in runs if r["mode"] == "gateway")
        assert all(len(r["latencies"]) == r["requests"] for r in runs)


def test_no_request_failed(bench_run: tuple[PlaybookRun, dict[str, Any]]) -> None:
    _, document = bench_run
    runs = [r for pool in document["pools"].values() for r in pool["runs"]]
    assert document["failed"] == 0
    assert all(r["ok"] == r["requests"] and r["statuses"] == {"200": r["requests"]} for r in runs), \
        [(r["url"], r["errors"]) for r in runs if r["failed"]]


def test_the_chart_is_a_png(bench_run: tuple[PlaybookRun, dict[str, Any]]) -> None:
    assert (OUTPUT / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_llama_pool_through_the_gateway_is_at_least_3_5x_one_instance(
        bench_run: tuple[PlaybookRun, dict[str, Any]]) -> None:
    _, document = bench_run
    llama = document["pools"]["llama"]
    assert llama["engine"] == SIMULATOR  # the settings the figure holds at
    assert document["parameters"]["max_tokens"] == 64
    assert llama["headline"]["concurrency"] == 16
    assert llama["headline"]["speedup"] >= 3.5, llama["headline"]


def test_the_key_is_never_shown_and_the_working_files_are_gone(
        bench_run: tuple[PlaybookRun, dict[str, Any]], api_key: str) -> None:
    run, _ = bench_run
    assert api_key not in json.dumps(run.events)
    assert api_key not in (OUTPUT / "bench.json").read_text()
    assert on_host(EMBED_HOST, "ls -d /tmp/memoryx-bench.* 2>/dev/null", check=False).stdout == ""

