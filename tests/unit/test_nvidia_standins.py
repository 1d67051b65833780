"""Unit tests of the lab's NVIDIA stand-ins (lab/nvidia/*): the driver's
nvidia-smi, nvidia-ctk, the OCI prestart hook and nvidia-container-cli.

The tools are scripts without a .py suffix, loaded here from their paths.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

NVIDIA_DIR = Path(__file__).resolve().parents[2] / "lab" / "nvidia"


def load_tool(name: str) -> ModuleType:
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(NVIDIA_DIR / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


smi = load_tool("nvidia-smi")
ctk = load_tool("nvidia-ctk")
hook = load_tool("nvidia-container-runtime-hook")
cli = load_tool("nvidia-container-cli")

UUIDS = ["GPU-aaaa-0", "GPU-bbbb-1", "GPU-cccc-2"]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "gpus.json"
    path.write_text(
        json.dumps(
            {
                "driver_version": "535.247.01",
                "cuda_version": "12.2",
                "gpus": [
                    {
                        "index": i,
                        "name": "Tesla V100-SXM2-32GB",
                        "memory_total_mib": 32768,
                        "uuid": UUIDS[i],
                    }
                    for i in range(3)
                ],
            }
        )
    )
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger"
    path.mkdir()
    return path


def write_ledger(ledger: Path, gpu: int, name: str, content: str) -> None:
    directory = ledger / f"gpu{gpu}"
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(content)


# --- nvidia-smi -------------------------------------------------------------


def run_smi(
    args: list[str], table: Path, ledger: Path, env: dict[str, str] | None = None
) -> list[str]:
    lines: list[str] = smi.run(args, env or {}, table, ledger)
    return lines


def test_smi_list_on_host_lists_every_gpu(table: Path, ledger: Path) -> None:
    assert run_smi(["-L"], table, ledger) == [
        f"GPU {i}: Tesla V100-SXM2-32GB (UUID: {UUIDS[i]})" for i in range(3)
    ]


def test_smi_in_container_lists_only_visible_gpus_numbered_from_zero(
    table: Path, ledger: Path
) -> None:
    lines = run_smi(["-L"], table, ledger, {"NVIDIA_VISIBLE_DEVICES": "2,0"})
    assert lines == [
        f"GPU 0: Tesla V100-SXM2-32GB (UUID: {UUIDS[2]})",
        f"GPU 1: Tesla V100-SXM2-32GB (UUID: {UUIDS[0]})",
    ]


def test_smi_visible_by_uuid_and_none(table: Path, ledger: Path) -> None:
    assert run_smi(["-L"], table, ledger, {"NVIDIA_VISIBLE_DEVICES": UUIDS[1]}) == [
        f"GPU 0: Tesla V100-SXM2-32GB (UUID: {UUIDS[1]})"
    ]
    assert run_smi(["-L"], table, ledger, {"NVIDIA_VISIBLE_DEVICES": "void"}) == []
    assert len(run_smi(["-L"], table, ledger, {"NVIDIA_VISIBLE_DEVICES": "all"})) == 3


def test_smi_query_csv_with_header_and_units(table: Path, ledger: Path) -> None:
    write_ledger(ledger, 1, "a.json", json.dumps({"gib": 14.4}))
    write_ledger(ledger, 1, "b.json", json.dumps({"gib": 1.6}))
    lines = run_smi(
        ["--query-gpu=index,name,memory.total,memory.used,memory.free,uuid", "--format=csv"],
        table,
        ledger,
    )
    assert lines[0] == "index, name, memory.total [MiB], memory.used [MiB], memory.free [MiB], uuid"
    assert lines[2] == f"1, Tesla V100-SXM2-32GB, 32768 MiB, 16384 MiB, 16384 MiB, {UUIDS[1]}"
    assert lines[1] == f"0, Tesla V100-SXM2-32GB, 32768 MiB, 0 MiB, 32768 MiB, {UUIDS[0]}"


def test_smi_query_utilization_as_the_status_view_asks(table: Path, ledger: Path) -> None:
    write_ledger(ledger, 0, "a.json", json.dumps({"gib": 14.4}))
    lines = run_smi(["--query-gpu=index,memory.used,memory.total,utilization.gpu", "--format=csv,noheader"],
                    table, ledger)
    assert lines == ["0, 14746 MiB, 32768 MiB, 0 %", "1, 0 MiB, 32768 MiB, 0 %", "2, 0 MiB, 32768 MiB, 0 %"]
    header = run_smi(["--query-gpu=utilization.gpu", "--format=csv"], table, ledger)[0]
    assert header == "utilization.gpu [%]"


def test_smi_query_noheader_nounits_reads_the_host_ledger_of_a_visible_gpu(
    table: Path, ledger: Path
) -> None:
    write_ledger(ledger, 2, "x.json", json.dumps({"gib": 2}))
    lines = run_smi(
        ["--query-gpu=index,memory.used,memory.free", "--format=csv,noheader,nounits"],
        table,
        ledger,
        {"NVIDIA_VISIBLE_DEVICES": "2"},
    )
    assert lines == ["0, 2048, 30720"]


def test_smi_ledger_ignores_unreadable_files(table: Path, ledger: Path) -> None:
    write_ledger(ledger, 0, "good.json", json.dumps({"gib": 1}))
    write_ledger(ledger, 0, "broken.json", "{not json")
    write_ledger(ledger, 0, "nofield.json", json.dumps({"other": 5}))
    write_ledger(ledger, 0, "wrongtype.json", json.dumps({"gib": "lots"}))
    write_ledger(ledger, 0, "ignored.txt", json.dumps({"gib": 9}))
    assert smi.ledger_used_mib(ledger, 0) == 1024


def test_smi_unknown_field_is_refused(table: Path, ledger: Path) -> None:
    with pytest.raises(smi.SmiError, match=r'Field "temperature\.gpu" is not a valid field'):
        run_smi(["--query-gpu=temperature.gpu", "--format=csv"], table, ledger)


def test_smi_without_driver_table_fails_like_the_real_tool(tmp_path: Path, ledger: Path) -> None:
    with pytest.raises(smi.SmiError, match="couldn't communicate with the NVIDIA driver") as info:
        run_smi(["-L"], tmp_path / "missing.json", ledger)
    assert info.value.status == 9


def test_smi_select_by_id(table: Path, ledger: Path) -> None:
    assert run_smi(["-L", "-i", "1"], table, ledger) == [
        f"GPU 1: Tesla V100-SXM2-32GB (UUID: {UUIDS[1]})"
    ]
    with pytest.raises(smi.SmiError, match="No devices were found matching 5"):
        run_smi(["-L", "-i", "5"], table, ledger)


def test_smi_table_shows_memory_usage(table: Path, ledger: Path) -> None:
    write_ledger(ledger, 0, "a.json", json.dumps({"gib": 0.5}))
    lines = run_smi([], table, ledger)
    assert "Driver Version: 535.247.01" in lines[1]
    assert any("512MiB / 32768MiB" in line and UUIDS[0] in line for line in lines)
    assert len({len(line) for line in lines}) == 1  # a rectangle


# --- nvidia-ctk -------------------------------------------------------------


def test_ctk_configure_merges_and_keeps_other_keys(tmp_path: Path) -> None:
    config = tmp_path / "daemon.json"
    config.write_text(
        json.dumps({"log-opts": {"max-size": "10m"}, "runtimes": {"other": {"path": "x"}}})
    )
    ctk.run(["runtime", "configure", "--runtime=docker", "--config", str(config)])
    assert json.loads(config.read_text()) == {
        "log-opts": {"max-size": "10m"},
        "runtimes": {
            "other": {"path": "x"},
            "nvidia": {"args": [], "path": "nvidia-container-runtime"},
        },
    }


def test_ctk_configure_creates_a_missing_file(tmp_path: Path) -> None:
    config = tmp_path / "docker" / "daemon.json"
    ctk.run(["runtime", "configure", "--runtime=docker", f"--config={config}"])
    assert json.loads(config.read_text()) == {
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}
    }


def test_ctk_refuses_other_runtimes_and_flags(tmp_path: Path) -> None:
    with pytest.raises(ctk.CtkError, match="unrecognized runtime 'containerd'"):
        ctk.run(["runtime", "configure", "--runtime=containerd", f"--config={tmp_path / 'x.json'}"])
    assert ctk.main(["runtime", "configure", "--bogus"]) == 1


def test_ctk_version() -> None:
    assert ctk.run(["--version"]).startswith("NVIDIA Container Toolkit CLI version ")


# --- nvidia-container-runtime-hook -----------------------------------------


def make_bundle(tmp_path: Path, env: list[str], root: str = "rootfs") -> Path:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(
        json.dumps({"process": {"env": env}, "root": {"path": root}})
    )
    return bundle


class Recorder:
    def __init__(self, returncode: int = 0, stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode
        self.stderr = stderr

    def __call__(self, cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(cmd)
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


def run_hook(
    tmp_path: Path,
    table: Path,
    bundle: Path,
    monkeypatch: pytest.MonkeyPatch,
    recorder: Recorder,
    args: tuple[str, ...] = ("prestart",),
) -> int:
    monkeypatch.setattr(hook.subprocess, "run", recorder)
    monkeypatch.setattr(hook, "TABLE_PATH", table)
    monkeypatch.setattr(hook, "LEDGER_DIR", tmp_path / "ledger")
    state = io.StringIO(
        json.dumps({"ociVersion": "1.0.2", "id": "c1", "pid": 4242, "bundle": str(bundle)})
    )
    status: int = hook.main(list(args), state)
    return status


def test_hook_without_gpu_request_does_nothing(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    bundle = make_bundle(tmp_path, ["PATH=/usr/bin"])
    assert run_hook(tmp_path, table, bundle, monkeypatch, recorder) == 0
    assert recorder.calls == []


def test_hook_refuses_unknown_device(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder()
    bundle = make_bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=1,7"])
    assert run_hook(tmp_path, table, bundle, monkeypatch, recorder) == 1
    assert (
        capsys.readouterr().err.strip() == "nvidia-container-cli: device error: 7: unknown device"
    )
    assert recorder.calls == []


def test_hook_binds_driver_files_inside_the_container_mount_namespace(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    bundle = make_bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=1", "HOME=/root"])
    assert run_hook(tmp_path, table, bundle, monkeypatch, recorder) == 0
    (cmd,) = recorder.calls
    assert cmd[0].endswith("/nsenter")
    assert cmd[1:4] == ["--target=4242", "--mount", "--"]
    script = cmd[-1]
    rootfs = bundle / "rootfs"
    assert f"mount --bind '/usr/bin/nvidia-smi' '{rootfs}/usr/bin/nvidia-smi'" in script
    assert f"mount --bind '{table}' '{rootfs}{table}'" in script
    assert f"mount -o remount,bind,ro '{rootfs}{table}'" in script
    ledger = tmp_path / "ledger"
    assert f"mount --bind '{ledger}' '{rootfs}{ledger}'" in script
    assert f"remount,bind,ro '{rootfs}{ledger}'" not in script  # the ledger stays writable
    assert ledger.is_dir()


def test_hook_accepts_uuid_and_all_and_absolute_rootfs(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    bundle = make_bundle(
        tmp_path, [f"NVIDIA_VISIBLE_DEVICES={UUIDS[2]}"], root="/var/lib/docker/x/merged"
    )
    assert run_hook(tmp_path, table, bundle, monkeypatch, recorder) == 0
    assert "'/var/lib/docker/x/merged/usr/bin/nvidia-smi'" in recorder.calls[0][-1]
    assert hook.check_devices(["all"], [(0, "u")]) is None


def test_hook_reports_a_failed_mount(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = Recorder(returncode=32, stderr="mount: permission denied")
    bundle = make_bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=0"])
    assert run_hook(tmp_path, table, bundle, monkeypatch, recorder) == 1
    assert "mount error: mount: permission denied" in capsys.readouterr().err


def test_hook_ignores_other_phases(
    tmp_path: Path, table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder()
    bundle = make_bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=9"])
    assert run_hook(tmp_path, table, bundle, monkeypatch, recorder, ("poststop",)) == 0


def test_hook_without_driver_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = make_bundle(tmp_path, ["NVIDIA_VISIBLE_DEVICES=0"])
    assert run_hook(tmp_path, tmp_path / "none.json", bundle, monkeypatch, Recorder()) == 1
    assert "libnvidia-ml.so.1" in capsys.readouterr().err


# --- nvidia-container-cli ----------------------------------------------------


def test_cli_info_lists_driver_and_devices(table: Path) -> None:
    lines: list[str] = cli.info(cli.load(table))
    assert lines[0] == "NVRM version:   535.247.01"
    assert f"GPU UUID:       {UUIDS[2]}" in lines
    assert sum(line.startswith("Device Index:") for line in lines) == 3
