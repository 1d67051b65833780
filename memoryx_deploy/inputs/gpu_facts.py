"""GPUs as declared (memoryx_gpu_hosts) against GPUs as the driver reports them (nvidia-smi).

`compare_gpus` is pure: host, declared GPUs, the output of

    nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version --format=csv,noheader,nounits

(units are accepted too) and of plain `nvidia-smi` (its "CUDA Version"), plus what the host's
engine images need -> one line per difference, naming host, GPU index, expected and found.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memoryx_deploy.inputs.fields import is_number, show

QUERY = ("nvidia-smi --query-gpu=index,name,memory.total,compute_cap,driver_version "
         "--format=csv,noheader,nounits")
# The driver reports less than the marketing size on some cards: ECC on GDDR5 (the P40) keeps
# 1/16 of the memory (6.25 %). A card of another size is far outside this.
MEMORY_TOLERANCE = 0.08
# Compute capability by the name nvidia-smi reports (NVIDIA, "CUDA GPUs - Compute
# Capability", developer.nvidia.com/cuda-gpus). A GPU not listed needs `compute_capability`.
KNOWN_CAPABILITIES = {
    "Tesla P4": "6.1",
    "Tesla P40": "6.1",
    "Tesla P100-PCIE-12GB": "6.0",
    "Tesla P100-PCIE-16GB": "6.0",
    "Tesla P100-SXM2-16GB": "6.0",
    "Tesla V100-PCIE-16GB": "7.0",
    "Tesla V100-PCIE-32GB": "7.0",
    "Tesla V100-SXM2-16GB": "7.0",
    "Tesla V100-SXM2-32GB": "7.0",
    "Tesla V100S-PCIE-32GB": "7.0",
    "Tesla T4": "7.5",
    "NVIDIA A100-PCIE-40GB": "8.0",
    "NVIDIA A100-SXM4-40GB": "8.0",
    "NVIDIA A100-SXM4-80GB": "8.0",
    "NVIDIA A100 80GB PCIe": "8.0",
    "NVIDIA A10": "8.6",
    "NVIDIA A40": "8.6",
    "NVIDIA L4": "8.9",
    "NVIDIA L40S": "8.9",
    "NVIDIA H100 PCIe": "9.0",
    "NVIDIA H100 80GB HBM3": "9.0",
}
CUDA_VERSION = re.compile(r"CUDA Version:\s*([0-9]+\.[0-9]+)")
NUMBER = re.compile(r"^([0-9]+(?:\.[0-9]+)?)")


def capability_key(capability: str) -> tuple[int, ...]:
    return version_key(capability)


def version_key(version: str) -> tuple[int, ...]:
    """"535.247.01" -> (535, 247, 1); non-numeric parts count as 0."""
    return tuple(int(part) if part.isdigit() else 0 for part in version.split("."))


def as_capability(value: object) -> str | None:
    """"7.0", 7.0 or 7 -> "7.0"; anything else None."""
    if isinstance(value, str) and re.fullmatch(r"[0-9]+\.[0-9]", value):
        return value
    if is_number(value) and value > 0:
        return f"{value:.1f}"
    return None


def declared_capability(gpu: Mapping[str, Any]) -> str | None:
    """A declared GPU's compute capability: its `compute_capability`, else by its name."""
    if gpu.get("compute_capability") is not None:
        return as_capability(gpu["compute_capability"])
    name = gpu.get("name")
    return KNOWN_CAPABILITIES.get(name) if isinstance(name, str) else None


def capability_problems(host: str, gpus: Sequence[Any]) -> list[str]:
    """Each declared GPU of `host` must have a compute capability: given or known by name."""
    problems = []
    for position, gpu in enumerate(gpus):
        if not isinstance(gpu, Mapping):
            continue  # reported by read_hosts
        where = f"{host} gpus[{position}]"
        given = gpu.get("compute_capability")
        if given is not None and as_capability(given) is None:
            problems.append(f"{where}: compute_capability must be like \"7.0\", got {show(given)}")
        elif given is None and declared_capability(gpu) is None and isinstance(gpu.get("name"), str):
            problems.append(
                f"{where}: the compute capability of {gpu['name']!r} is not known; set "
                "compute_capability (nvidia-smi --query-gpu=compute_cap prints it)")
    return problems


@dataclass(frozen=True)
class FoundGpu:
    index: int
    name: str
    memory_mib: float
    compute_capability: str
    driver_version: str


@dataclass(frozen=True)
class Requirement:
    """What one engine image needs from the host's driver."""

    image: str
    min_driver: str
    min_cuda: str


def parse_query(host: str, output: str) -> tuple[list[FoundGpu], list[str]]:
    """The GPUs of QUERY's output (with or without units), and a problem per unreadable line."""
    found: list[FoundGpu] = []
    problems: list[str] = []
    for number, line in enumerate(output.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        gpu = _found(fields) if len(fields) == 5 else None
        if gpu is None:
            problems.append(f"{host}: nvidia-smi line {number} {line.strip()!r} is not "
                            "index, name, memory.total, compute_cap, driver_version")
        else:
            found.append(gpu)
    return found, problems


def _found(fields: list[str]) -> FoundGpu | None:
    index, name, memory, capability, driver = fields
    memory_number = NUMBER.match(memory)  # "32768" or "32768 MiB"
    if not index.isdigit() or memory_number is None or as_capability(capability) is None:
        return None
    return FoundGpu(index=int(index), name=name, memory_mib=float(memory_number.group(1)),
                    compute_capability=capability, driver_version=driver)


def compare_gpus(host: str, declared: Sequence[Mapping[str, Any]], query_output: str,
                 plain_output: str, requirements: Sequence[Requirement] = ()) -> list[str]:
    """Every difference between the declared GPUs and nvidia-smi's, and every driver/CUDA
    version below what an engine image on the host needs."""
    found, problems = parse_query(host, query_output)
    by_index = {gpu.index: gpu for gpu in found}
    if len(found) != len(declared):
        problems.append(f"{host}: {len(declared)} GPUs declared (memoryx_gpu_hosts), "
                        f"nvidia-smi reports {len(found)}")
    for gpu in declared:
        problems += _gpu_problems(host, gpu, by_index.get(int(gpu["index"])))
    declared_indexes = {int(gpu["index"]) for gpu in declared}
    for extra in found:
        if extra.index not in declared_indexes:
            problems.append(f"{host} GPU {extra.index}: not declared, nvidia-smi reports "
                            f"{extra.name!r} {extra.memory_mib:g} MiB")
    problems += driver_problems(host, found, plain_output, requirements)
    return problems


def _gpu_problems(host: str, gpu: Mapping[str, Any], found: FoundGpu | None) -> list[str]:
    where = f"{host} GPU {gpu['index']}"
    if found is None:
        return [f"{where}: declared {gpu['name']!r} {gpu['memory_gib']:g} GiB, "
                "nvidia-smi reports no such GPU"]
    problems = []
    if found.name != gpu["name"]:
        problems.append(f"{where}: model expected {gpu['name']!r}, found {found.name!r}")
    expected_mib = float(gpu["memory_gib"]) * 1024
    if abs(found.memory_mib - expected_mib) > expected_mib * MEMORY_TOLERANCE:
        problems.append(f"{where}: memory expected {gpu['memory_gib']:g} GiB "
                        f"({expected_mib:g} MiB, within {MEMORY_TOLERANCE:.0%}), "
                        f"found {found.memory_mib:g} MiB")
    capability = declared_capability(gpu)
    if capability is not None and capability != found.compute_capability:
        problems.append(f"{where}: compute capability expected {capability}, "
                        f"found {found.compute_capability}")
    return problems


def driver_problems(host: str, found: Sequence[FoundGpu], plain_output: str,
                    requirements: Sequence[Requirement]) -> list[str]:
    if not requirements:
        return []
    problems = []
    drivers = sorted({gpu.driver_version for gpu in found}, key=version_key)
    cuda_match = CUDA_VERSION.search(plain_output)
    if cuda_match is None:
        problems.append(f"{host}: nvidia-smi printed no \"CUDA Version\"; the CUDA version "
                        "the driver supports is unknown")
    for need in requirements:
        if drivers and version_key(drivers[0]) < version_key(need.min_driver):
            problems.append(f"{host}: driver {drivers[0]} is older than {need.min_driver}, "
                            f"which image {need.image!r} needs (memoryx_engines min_driver)")
        if cuda_match and version_key(cuda_match.group(1)) < version_key(need.min_cuda):
            problems.append(f"{host}: the driver supports CUDA {cuda_match.group(1)}, image "
                            f"{need.image!r} needs at least {need.min_cuda} "
                            "(memoryx_engines min_cuda)")
    return problems
