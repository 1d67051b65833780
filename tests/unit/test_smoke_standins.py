"""The Ollama smoke command (memoryx_deploy/data/smoke.json) against the Ollama simulator, which
answers it from the stand-in driver's table and the image's declared CUDA architectures, and
the stand-in nvidia-smi's compute_cap. (The vLLM smoke is in test_vllm_sim.py.)"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.portpick import free_port

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "lab" / "simulators" / "ollama_sim.py"
SMOKE = json.loads((ROOT / "memoryx_deploy" / "data" / "smoke.json").read_text())["ollama"]
CUDA_V12 = "5.0 5.2 6.0 6.1 7.0 7.5 8.0 8.6 8.9 9.0 12.0"
CUDA_V13 = "7.5 8.0 8.6 8.7 8.9 9.0 10.0 10.3 11.0 12.0 12.1"


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "gpus.json"
    gpus = [{"index": i, "name": "Tesla P40", "memory_total_mib": 24576, "compute_cap": "6.1",
             "uuid": f"GPU-p40-{i}"} for i in range(2)]
    path.write_text(json.dumps({"driver_version": "535.247.01", "cuda_version": "12.2",
                                "gpus": gpus}))
    return path


def run_smoke(tmp_path: Path, table: Path, archs: str, gpu: str) -> subprocess.CompletedProcess[str]:
    """The smoke script as the image runs it with `/bin/sh -c`; here /bin/ollama is the
    simulator and its fixed port a free one (the test host may use 11434)."""
    script = SMOKE["args"][1].replace(
        "/bin/ollama", f"{shlex.quote(sys.executable)} {shlex.quote(str(SIM))}").replace(
        "127.0.0.1:11434", f"127.0.0.1:{free_port()}").replace(
        "/tmp/memoryx-smoke.log", str(tmp_path / "smoke.log"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA", "NVIDIA"))}
    env.update(OLLAMA_MODELS=str(tmp_path / "models"), OLLAMA_SIM_GPUS_FILE=str(table),
               OLLAMA_SIM_CUDA_ARCHS=archs, NVIDIA_VISIBLE_DEVICES=gpu, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([SMOKE["entrypoint"], "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_ollama_smoke_passes_on_a_p40_with_the_cuda_v12_library(tmp_path: Path, table: Path) -> None:
    result = run_smoke(tmp_path, table, CUDA_V12, "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'msg="inference compute" id=GPU-p40-1 library=CUDA compute=6.1' in result.stdout
    assert result.stdout.rstrip().endswith(SMOKE["expect"] + ": Ollama loaded its CUDA library for this GPU")


def test_ollama_smoke_fails_when_the_library_skips_pascal(tmp_path: Path, table: Path) -> None:
    result = run_smoke(tmp_path, table, CUDA_V13, "0")
    assert result.returncode == 1
    assert "compute capability not in compiled architectures" in result.stdout
    assert "library=cpu" in result.stdout
    assert SMOKE["expect"] not in result.stdout
    assert "memoryx-smoke failed: Ollama found no CUDA device it can run on" in result.stdout


def test_ollama_smoke_fails_without_a_gpu(tmp_path: Path, table: Path) -> None:
    result = run_smoke(tmp_path, table, CUDA_V12, "void")
    assert result.returncode == 1
    assert "library=cpu" in result.stdout


def test_stand_in_smi_reports_compute_cap_as_the_real_tool(tmp_path: Path, table: Path) -> None:
    env = {**os.environ, "NVIDIA_SIM_TABLE": str(table), "NVIDIA_SIM_LEDGER": str(tmp_path / "l"),
           "NVIDIA_VISIBLE_DEVICES": "1"}
    query = "--query-gpu=index,name,memory.total,compute_cap,driver_version"
    smi = [sys.executable, str(ROOT / "lab" / "nvidia" / "nvidia-smi")]
    plain = subprocess.run([*smi, query, "--format=csv,noheader,nounits"], env=env,
                           capture_output=True, text=True, check=True).stdout
    units = subprocess.run([*smi, query, "--format=csv"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert plain == "0, Tesla P40, 24576, 6.1, 535.247.01\n"
    assert units == ("index, name, memory.total [MiB], compute_cap, driver_version\n"
                     "0, Tesla P40, 24576 MiB, 6.1, 535.247.01\n")
    table.write_text(json.dumps({"gpus": [{"index": 0, "name": "Tesla P40",
                                           "memory_total_mib": 24576}]}))
    env["NVIDIA_VISIBLE_DEVICES"] = "0"
    older = subprocess.run([*smi, "--query-gpu=compute_cap", "--format=csv,noheader"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert older == "[N/A]\n"
