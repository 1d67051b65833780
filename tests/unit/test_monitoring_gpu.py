"""roles/node_exporter_gpu's memoryx-gpu-metrics: nvidia-smi's CSV -> node exporter's textfile,
run against the lab's stand-in nvidia-smi (its table and memory ledger), checked with promtool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/node_exporter_gpu/files/memoryx-gpu-metrics"
SMI = ROOT / "lab/nvidia/nvidia-smi"


@pytest.fixture
def smi_env(tmp_path: Path) -> dict[str, str]:
    table = tmp_path / "gpus.json"
    table.write_text(json.dumps({"driver_version": "535.247.01", "gpus": [
        {"index": 0, "name": "Tesla P40", "memory_total_mib": 24576},
        {"index": 1, "name": "Tesla P40", "memory_total_mib": 24576}]}))
    ledger = tmp_path / "ledger"
    (ledger / "gpu1").mkdir(parents=True)
    (ledger / "gpu1" / "a.json").write_text(json.dumps({"state": "ready", "gib": 1.5, "name": "x"}))
    return {**os.environ, "NVIDIA_SIM_TABLE": str(table), "NVIDIA_SIM_LEDGER": str(ledger)}


def run(out: Path, smi: Path | str, env: dict[str, str]) -> str:
    subprocess.run([sys.executable, str(SCRIPT), str(out), str(smi)], env=env, check=True,
                   timeout=60)
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []  # no leftovers
    return out.read_text()


def test_gpus_memory_and_utilisation_from_nvidia_smi(tmp_path: Path, smi_env: dict[str, str]) -> None:
    text = run(tmp_path / "memoryx_gpu.prom", SMI, smi_env)
    assert 'nvidia_smi_gpu_info{gpu="0",name="Tesla P40"} 1' in text
    assert 'nvidia_smi_memory_total_bytes{gpu="1"} 25769803776' in text  # 24576 MiB
    assert 'nvidia_smi_memory_used_bytes{gpu="1"} 1610612736' in text  # 1.5 GiB of the ledger
    assert 'nvidia_smi_memory_used_bytes{gpu="0"} 0' in text
    assert 'nvidia_smi_utilization_gpu_ratio{gpu="0"} 0' in text
    assert "memoryx_gpu_metrics_success 1" in text
    promtool = shutil.which("promtool") or str(ROOT / "build/tools/bin/promtool")
    if Path(promtool).is_file():
        lint = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                              capture_output=True, timeout=60, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_failing_nvidia_smi_leaves_no_stale_gpu_figures(tmp_path: Path, smi_env: dict[str, str]) -> None:
    out = tmp_path / "memoryx_gpu.prom"
    run(out, SMI, smi_env)
    broken = {**smi_env, "NVIDIA_SIM_TABLE": str(tmp_path / "missing.json")}  # no driver
    text = run(out, SMI, broken)
    assert "memoryx_gpu_metrics_success 0" in text
    assert "nvidia_smi_memory_used_bytes{" not in text
    text = run(out, tmp_path / "no-such-nvidia-smi", smi_env)
    assert "memoryx_gpu_metrics_success 0" in text


def test_not_available_figures_are_left_out(tmp_path: Path) -> None:
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '0, Tesla V100-SXM2-32GB, 100, 32768, [N/A]'\n")
    fake.chmod(0o755)
    text = run(tmp_path / "gpu.prom", fake, dict(os.environ))
    assert 'nvidia_smi_memory_used_bytes{gpu="0"} 104857600' in text
    assert "nvidia_smi_utilization_gpu_ratio{" not in text
