"""Verify role node_exporter_gpu: the exporter on the host's address, GPU figures from nvidia-smi."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from monitoring_testkit import monitoring_view, poll, scenario_vars
from monitoring_testkit import scrape as monitoring_scrape

GROUP_VARS = scenario_vars(__file__)
GPUS = GROUP_VARS["mxmol_gpu_table"]["gpus"]
LEDGER = GROUP_VARS["mxmol_ledger"]
MIB = 1024 * 1024


MONITORING = monitoring_view(GROUP_VARS)
ADDRESS = MONITORING["exporters"]["mx-llm-01"]["address"]
PORT = MONITORING["node_exporter_port"]
INTERVAL = MONITORING["scrape_interval_seconds"]
SERVICE = "prometheus-node-exporter"
TIMER = "memoryx-gpu-metrics.timer"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape() -> Samples:
    """node exporter's /metrics as this machine (another host on the LAN) reads it."""
    samples = monitoring_scrape(f"http://{ADDRESS}:{PORT}/metrics")
    return {(name, frozenset(labels.items())): number for name, labels, number in samples}


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def wait_for(check: Callable[[Samples], bool], seconds: float = 10 * INTERVAL + 30) -> Samples:
    return poll(scrape, check, seconds)


def test_the_data_puts_the_exporter_on_the_host_address() -> None:
    assert GROUP_VARS["mxmol_addresses"]["mx-llm-01"] == ADDRESS
    assert INTERVAL == 3


def test_package_installed(host: Any) -> None:
    assert host.package(SERVICE).is_installed


@pytest.mark.parametrize("unit", [SERVICE, TIMER])
def test_unit_enabled_and_active(host: Any, unit: str) -> None:
    assert host.service(unit).is_enabled
    assert host.run(f"systemctl is-active {unit}").stdout.strip() == "active"


def test_timer_runs_at_the_scrape_interval(host: Any) -> None:
    timer = host.file(f"/etc/systemd/system/{TIMER}").content_string
    assert f"OnUnitActiveSec={INTERVAL}s" in timer


def test_listens_only_on_the_host_address(host: Any) -> None:
    listening = host.check_output(f"ss -Hltn 'sport = :{PORT}'").splitlines()
    assert [line.split()[3] for line in listening] == [f"{ADDRESS}:{PORT}"]
    assert host.run(f"curl -sS --max-time 5 http://127.0.0.1:{PORT}/metrics").rc != 0


def test_serves_the_gpus_of_the_stand_in_driver() -> None:
    samples = wait_for(lambda s: value(s, "memoryx_gpu_metrics_success") == 1)
    assert value(samples, "memoryx_gpu_metrics_success") == 1
    assert value(samples, "node_textfile_scrape_error") == 0
    for gpu in GPUS:
        index = str(gpu["index"])
        used = LEDGER["gib"] * 1024 * MIB if gpu["index"] == LEDGER["gpu"] else 0
        assert value(samples, "nvidia_smi_gpu_info", gpu=index, name=gpu["name"]) == 1
        assert value(samples, "nvidia_smi_memory_total_bytes", gpu=index) == gpu["memory_total_mib"] * MIB
        assert value(samples, "nvidia_smi_memory_used_bytes", gpu=index) == used
        assert value(samples, "nvidia_smi_utilization_gpu_ratio", gpu=index) == 0
    assert sum(1 for name, _ in samples if name == "nvidia_smi_gpu_info") == len(GPUS)


def test_timer_refreshes_the_figures() -> None:
    before = value(scrape(), "memoryx_gpu_metrics_timestamp_seconds")
    assert before is not None
    after = value(wait_for(lambda s: (value(s, "memoryx_gpu_metrics_timestamp_seconds") or 0) > before),
                  "memoryx_gpu_metrics_timestamp_seconds")
    assert after is not None and after > before


def test_memory_a_new_instance_takes_shows_up(host: Any) -> None:
    entry = "/run/nvidia-sim/gpu0/mxmol-verify.json"
    host.run_expect([0], f"mkdir -p /run/nvidia-sim/gpu0 && echo '{{\"gib\": 2}}' > {entry}")
    try:
        samples = wait_for(lambda s: value(s, "nvidia_smi_memory_used_bytes", gpu="0") == 2048 * MIB)
        assert value(samples, "nvidia_smi_memory_used_bytes", gpu="0") == 2048 * MIB
    finally:
        host.run_expect([0], f"rm -f {entry}")


def test_a_failing_nvidia_smi_drops_the_gpu_figures(host: Any) -> None:
    """Last: hides the GPU table (nvidia-smi fails as without a driver), then restores it."""
    host.run_expect([0], "mv /etc/nvidia-sim/gpus.json /etc/nvidia-sim/gpus.json.hidden")
    try:
        samples = wait_for(lambda s: value(s, "memoryx_gpu_metrics_success") == 0)
        assert value(samples, "memoryx_gpu_metrics_success") == 0
        assert not [name for name, _ in samples if name.startswith("nvidia_smi_")]
    finally:
        host.run_expect([0], "mv /etc/nvidia-sim/gpus.json.hidden /etc/nvidia-sim/gpus.json")
    assert value(wait_for(lambda s: value(s, "memoryx_gpu_metrics_success") == 1),
                 "memoryx_gpu_metrics_success") == 1
