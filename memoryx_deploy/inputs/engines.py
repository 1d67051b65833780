"""Engine images as data (`memoryx_engines`): which compute capabilities each image runs on,
the driver it needs, the vLLM version it is (and so its flags). Evidence: docs/engines.md."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memoryx_deploy.inputs.fields import Reader, pinned, show
from memoryx_deploy.inputs.gpu_facts import (
    Requirement,
    as_capability,
    capability_key,
    capability_problems,
    compare_gpus,
    declared_capability,
)
from memoryx_deploy.inputs.vllm_flags import VllmFlags, load_flags
from memoryx_deploy.schema.stack import EngineView, Placement, Stack

ENGINE_KEYS = ("engine", "version", "compute_capabilities", "min_driver", "min_cuda", "stand_in",
               "source")
KINDS = ("vllm", "ollama")
VERSION = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Engine:
    image: str
    kind: str
    version: str
    compute_capabilities: tuple[str, ...]
    min_driver: str
    min_cuda: str
    flags: VllmFlags | None  # the flag list of its vLLM version (vllm engines only)
    valid: bool = True  # False: its entry is broken (reported); nothing is checked against it

    def runs_on(self, capability: str) -> bool:
        return capability in self.compute_capabilities


def read_engines(problems: list[str], data: object, label: str = "engines") -> dict[str, Engine]:
    """image -> Engine, from `memoryx_engines` (or `label`); every broken entry adds a problem
    (and stays, marked not valid, so that its instances are not also reported as undescribed)."""
    engines: dict[str, Engine] = {}
    if not isinstance(data, Mapping):
        problems.append(f"{label}: must be a mapping of image to engine, got {show(data)}")
        return engines
    for image, entry in data.items():
        if not isinstance(image, str) or not image:
            problems.append(f"{label}: key {show(image)} must be an image reference")
            continue
        engines[image] = _engine(problems, image, entry, label)
    return engines


def _engine(problems: list[str], image: str, data: object, label: str) -> Engine:
    reader = Reader(problems, f"{label} {image!r}", data, ENGINE_KEYS)
    kind = reader.string("engine")
    if kind and kind not in KINDS:
        reader.fail(f"engine must be one of {', '.join(KINDS)}, got {kind!r}")
    version = reader.string("version", VERSION)
    capabilities = _capabilities(reader)
    min_driver = reader.string("min_driver", VERSION)
    min_cuda = reader.string("min_cuda", VERSION)
    reader.boolean("stand_in", default=False)
    reader.string("source", default="")
    flags = None
    if kind == "vllm" and version and not reader.failed:
        flags = load_flags(version)
        if flags is None:
            reader.fail(f"vLLM {version} has no flag list (memoryx_deploy/data/"
                        f"vllm-flags-{version}.json); run scripts/vllm-flags {version}")
    return Engine(image=image, kind=kind, version=version, compute_capabilities=capabilities,
                  min_driver=min_driver, min_cuda=min_cuda, flags=flags, valid=not reader.failed)


def _capabilities(reader: Reader) -> tuple[str, ...]:
    items = reader.sequence("compute_capabilities")
    if "compute_capabilities" in reader.data and not items:
        reader.fail("compute_capabilities must list at least one compute capability")
    found: list[str] = []
    for item in items:
        capability = as_capability(item)
        if capability is None:
            reader.fail(f"compute_capabilities entries must be like \"7.0\", got {show(item)}")
        elif capability not in found:
            found.append(capability)
    return tuple(sorted(found, key=capability_key))


def placement_problems(gpu_hosts: Mapping[Any, Any], kind: str,
                       instances: Sequence[Placement], engines: Mapping[str, Engine]) -> list[str]:
    """An instance whose image is not described, is another engine, or cannot run on its GPU."""
    problems: list[str] = []
    unknown: dict[str, list[str]] = {}
    for instance in instances:
        image = instance["image"]
        engine = engine_of(engines, image)
        label = f"{kind} instance {instance['name']!r}"
        if engine is not None and not engine.valid:
            continue
        if engine is None:
            if pinned(image):  # an unpinned one is refused as such
                unknown.setdefault(image, []).append(instance["name"])
            continue
        if engine.kind != kind:
            problems.append(f"{label}: image {image!r} is a {engine.kind} engine in "
                            "memoryx_engines, not a " + kind + " one")
            continue
        gpu = _gpu(gpu_hosts, instance["host"], instance["gpu"])
        capability = declared_capability(gpu)
        if capability is None or engine.runs_on(capability):
            continue  # an unknown capability is reported with the GPU itself
        problems.append(
            f"{label}: image {image!r} runs on compute capability "
            f"{', '.join(engine.compute_capabilities)} (memoryx_engines), but "
            f"{instance['host']} GPU {instance['gpu']} ({gpu.get('name')}) has compute "
            f"capability {capability}")
    for image, names in unknown.items():
        problems.append(
            f"engines: image {image!r} ({kind} instances {', '.join(names)}) is not in "
            "memoryx_engines; describe the compute capabilities, driver and version it has "
            "(docs/engines.md)")
    return problems


def engine_of(engines: Mapping[str, Engine], image: str) -> Engine | None:
    """The engine described for `image`; `name:tag@sha256:...` is described as `name:tag`
    (the digest pins which build of that tag)."""
    engine = engines.get(image)
    if engine is None and "@" in image:
        engine = engines.get(image.split("@", 1)[0])
    return engine


def _gpu(gpu_hosts: Mapping[Any, Any], host: str, index: int) -> Mapping[str, Any]:
    """The declared GPU `index` of `host`, as the user wrote it (read_hosts checked it)."""
    host_data = gpu_hosts.get(host)
    gpus = host_data.get("gpus") if isinstance(host_data, Mapping) else None
    for gpu in gpus if isinstance(gpus, list) else []:
        if isinstance(gpu, Mapping) and gpu.get("index") == index:
            return gpu
    return {}


def engine_problems(gpu_hosts: Mapping[Any, Any], vllm: Sequence[Placement],
                    ollama: Sequence[Placement], engines: Mapping[str, Engine]) -> list[str]:
    """The preflight's GPU/engine gate: every declared GPU has a known compute capability, and
    every instance's image is described and runs on its GPU."""
    problems: list[str] = []
    for host, data in gpu_hosts.items():
        gpus = data.get("gpus") if isinstance(data, Mapping) else None
        problems += capability_problems(str(host), gpus if isinstance(gpus, list) else [])
    return (problems + placement_problems(gpu_hosts, "vllm", vllm, engines)
            + placement_problems(gpu_hosts, "ollama", ollama, engines))


def flag_problems(problems: list[str], instance: str, image: str, profile: str,
                  profile_args: Mapping[str, object], instance_args: Mapping[str, object],
                  engines: Mapping[str, Engine]) -> None:
    """Adds a problem for every `args` key that is not a flag of the image's vLLM version,
    under the instance or the profile that wrote it (a profile's once)."""
    engine = engine_of(engines, image)
    if engine is None or engine.flags is None or not engine.valid:
        return  # an image not described is reported by placement_problems
    written = [(f"vllm profile {profile!r}", key, value) for key, value in profile_args.items()
               if key not in instance_args]
    written += [(f"vllm instance {instance!r}", key, value) for key, value in instance_args.items()]
    for where, key, value in written:
        problem = engine.flags.problem(key, value, image)
        line = f"{where}: {problem}" if problem else None
        if line and line not in problems:
            problems.append(line)


def engine_views(engines: Mapping[str, Engine]) -> dict[str, EngineView]:
    """The stack's record of every valid engine entry."""
    return {image: EngineView(engine=e.kind, version=e.version,
                              compute_capabilities=list(e.compute_capabilities),
                              min_driver=e.min_driver, min_cuda=e.min_cuda)
            for image, e in engines.items() if e.valid}


def host_gpu_problems(stack: Stack, host: str, query_output: str, plain_output: str) -> list[str]:
    """Part 1's check on one host: its GPUs as nvidia-smi reports them (QUERY's output, and
    plain `nvidia-smi` for the CUDA version) against the stack's (memoryx_gpu_hosts), and its
    driver against what the images of its instances need (the stack's engines).
    Empty when they agree."""
    images = sorted({i["image"] for i in [*stack["vllm_instances"], *stack["ollama_instances"]]
                     if i["host"] == host})
    engines = stack["engines"]
    found = {image: engines.get(image) or engines.get(image.split("@", 1)[0]) for image in images}
    needs = [Requirement(image, engine["min_driver"], engine["min_cuda"])
             for image, engine in found.items() if engine is not None]
    declared = stack["hosts"][host]["gpus"] if host in stack["hosts"] else []
    return compare_gpus(host, declared, query_output, plain_output, needs)
