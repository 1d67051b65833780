"""torch: memoryx-deploy lab STAND-IN. This is NOT PyTorch.

Installed in the vLLM simulator image so that the smoke command memoryx-deploy runs in a real
vllm/vllm-openai image (memoryx_deploy/data/smoke.json: a CUDA op through the image's own
torch) runs unchanged in the lab, and answers honestly for the lab's stand-in GPUs:

* the GPUs are those of NVIDIA_VISIBLE_DEVICES, read from the stand-in driver's table that the
  stand-in container hook mounts (/etc/nvidia-sim/gpus.json, its "compute_cap" per GPU); none
  -> "RuntimeError: No CUDA GPUs are available", as torch says;
* the compute capabilities the image has kernels for are its VLLM_SIM_CUDA_ARCHS (the image's
  TORCH_CUDA_ARCH_LIST); a GPU outside them gets torch's warning, then on the first kernel
  "RuntimeError: CUDA error: no kernel image is available for execution on the device".

Only what the smoke command uses exists: torch.ones(n, device="cuda"), +, *, .sum(), .item(),
torch.cuda.{is_available, device_count, get_device_name, get_device_capability,
get_arch_list, synchronize}, torch.version.cuda, torch.__version__.
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

__version__ = os.environ.get("VLLM_SIM_TORCH_VERSION", "2.10.0+cu129") + " (memoryx-lab stand-in)"
version = types.SimpleNamespace(cuda=os.environ.get("VLLM_SIM_TORCH_CUDA", "12.9"))
TABLE = Path(os.environ.get("VLLM_SIM_GPUS_FILE", "/etc/nvidia-sim/gpus.json"))
NO_KERNEL = "CUDA error: no kernel image is available for execution on the device"


def _archs() -> list[str]:
    return os.environ.get("VLLM_SIM_CUDA_ARCHS", "").split()


def _runs_on(capability: str, archs: list[str]) -> bool:
    """CUDA's rule: a kernel built for X.Y runs on X.Z with Z >= Y; PTX ("+PTX") also on any
    later capability. No declared list: anything."""
    if not archs:
        return True
    major, _, minor = capability.partition(".")
    have = (int(major or 0), int(minor or 0))
    for arch in archs:
        a_major, _, a_minor = arch.replace("+PTX", "").partition(".")
        built = (int(a_major), int(a_minor or 0))
        if built[0] == have[0] and built[1] <= have[1]:
            return True
        if arch.endswith("+PTX") and built <= have:
            return True
    return False


def _devices() -> list[dict[str, Any]]:
    """The visible GPUs, numbered from 0 as CUDA numbers them inside the container."""
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if visible.lower() in ("", "void", "none"):
        return []
    try:
        table = json.loads(TABLE.read_text())["gpus"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if visible == "all":
        return list(table)
    wanted = [item.strip() for item in visible.split(",")]
    return [g for w in wanted for g in table if w in (str(g["index"]), g.get("uuid"))]


def _device(index: int) -> dict[str, Any]:
    devices = _devices()
    if not devices:
        raise RuntimeError("No CUDA GPUs are available")
    if index >= len(devices):
        raise RuntimeError("CUDA error: invalid device ordinal")
    return devices[index]


def _launch(index: int = 0) -> None:
    """A kernel launch on device `index`: fails where the image has no kernel for it."""
    gpu = _device(index)
    archs = _archs()
    capability = str(gpu.get("compute_cap", ""))
    if not _runs_on(capability, archs):
        sm = "sm_" + capability.replace(".", "")
        print(f"UserWarning: {gpu['name']} with CUDA capability {sm} is not compatible with "
              "the current PyTorch installation.\nThe current PyTorch install supports CUDA "
              f"capabilities {' '.join(cuda.get_arch_list())}.", file=sys.stderr)
        raise RuntimeError(NO_KERNEL + "\nCUDA kernel errors might be asynchronously reported "
                           "at some other API call, so the stacktrace below might be incorrect.")


class Tensor:
    def __init__(self, values: list[float], on_gpu: bool) -> None:
        self.values = values
        self.on_gpu = on_gpu

    def _op(self, other: Any, op: Any) -> Tensor:
        if self.on_gpu:
            _launch()
        right = other.values if isinstance(other, Tensor) else [other] * len(self.values)
        return Tensor([op(a, b) for a, b in zip(self.values, right, strict=True)], self.on_gpu)

    def __add__(self, other: Any) -> Tensor:
        return self._op(other, lambda a, b: a + b)

    def __mul__(self, other: Any) -> Tensor:
        return self._op(other, lambda a, b: a * b)

    def sum(self) -> Tensor:
        if self.on_gpu:
            _launch()
        return Tensor([float(sum(self.values))], self.on_gpu)

    def item(self) -> float:
        return self.values[0]


def ones(size: int, device: str = "cpu") -> Tensor:
    on_gpu = str(device).startswith("cuda")
    if on_gpu:
        _launch()  # the fill kernel
    return Tensor([1.0] * int(size), on_gpu)


class _Cuda(types.ModuleType):
    def is_available(self) -> bool:
        return bool(_devices())

    def device_count(self) -> int:
        return len(_devices())

    def get_device_name(self, index: int = 0) -> str:
        return str(_device(index)["name"])

    def get_device_capability(self, index: int = 0) -> tuple[int, int]:
        major, _, minor = str(_device(index).get("compute_cap", "0.0")).partition(".")
        return int(major), int(minor or 0)

    def get_arch_list(self) -> list[str]:
        return ["sm_" + a.replace("+PTX", "").replace(".", "") for a in _archs()]

    def synchronize(self) -> None:
        _device(0)


cuda = _Cuda("torch.cuda")
sys.modules["torch.cuda"] = cuda
