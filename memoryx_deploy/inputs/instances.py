"""The GPU hosts of `memoryx_config.gpu_hosts`: their cards and the instances on each card."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from memoryx_deploy.inputs.containers import LOOPBACK, container_name, ollama_container, vllm_container
from memoryx_deploy.inputs.engines import engine_problems, flag_problems
from memoryx_deploy.inputs.fields import NAME, Reader, is_int, show
from memoryx_deploy.inputs.gpu_facts import declared_capability
from memoryx_deploy.inputs.settings import Settings
from memoryx_deploy.inputs.vllm_args import read_args, render_args
from memoryx_deploy.schema.stack import Gpu, Host, OllamaInstance, VllmInstance

HOST_KEYS = ("gpus", "vllm_instances", "ollama_instances")
GPU_KEYS = ("index", "name", "memory_gib", "compute_capability")
VLLM_KEYS = ("name", "profile", "port", "args", "env", "image")
OLLAMA_KEYS = ("name", "port", "env", "image")
T = TypeVar("T")


@dataclass(frozen=True)
class Site:
    """One GPU of one host, where instances are placed."""

    host: str
    address: str
    bind_address: str
    gpu: int


@dataclass
class Hosts:
    hosts: dict[str, Host] = field(default_factory=dict)
    vllm: list[VllmInstance] = field(default_factory=list)
    ollama: list[OllamaInstance] = field(default_factory=list)


def read_hosts(
    problems: list[str], data: Mapping[Any, Any], addresses: Mapping[str, str],
    gateway_host: str, settings: Settings,
) -> Hosts:
    result = Hosts()
    for host, host_data in data.items():
        if not isinstance(host, str):
            problems.append(f"gpu host {show(host)}: the name must be a string")
            continue
        reader = Reader(problems, host, host_data, HOST_KEYS)
        address = addresses.get(host, "")
        if not address:
            problems.append(f"{host}: no address (ansible_host) in the inventory")
        gpus = _gpus(problems, host, reader.sequence("gpus"))
        result.hosts[host] = Host(address=address, gpus=gpus)
        bind = LOOPBACK if host == gateway_host else address
        for index, items in _per_gpu(reader, "vllm_instances", gpus):
            site = Site(host, address, bind, index)
            result.vllm += _placed(problems, site, items, settings, _vllm)
        for index, items in _per_gpu(reader, "ollama_instances", gpus):
            site = Site(host, address, bind, index)
            result.ollama += _placed(problems, site, items, settings, _ollama)
    problems += engine_problems(data, result.vllm, result.ollama, settings.engines)
    return result


def _gpus(problems: list[str], host: str, items: list[Any]) -> list[Gpu]:
    gpus: dict[int, Gpu] = {}
    for position, item in enumerate(items):
        reader = Reader(problems, f"{host} gpus[{position}]", item, GPU_KEYS)
        gpu = Gpu(index=reader.integer("index", low=0), name=reader.string("name"),
                  memory_gib=reader.number("memory_gib", above=0),
                  compute_capability=declared_capability(reader.data) or "")
        if not is_int(reader.data.get("index")):
            continue  # no usable index (reported above)
        if gpu["index"] in gpus:
            reader.fail(f"index {gpu['index']} is listed twice")
        else:
            gpus[gpu["index"]] = gpu
    return [gpus[index] for index in sorted(gpus)]


def _per_gpu(reader: Reader, key: str, gpus: list[Gpu]) -> list[tuple[int, list[Any]]]:
    """`{GPU index: [instance, ...]}`; Jinja may have turned the indexes into strings."""
    known = [gpu["index"] for gpu in gpus]
    lists: dict[int, list[Any]] = {}
    for raw_index, items in reader.mapping(key, default={}).items():
        index = _gpu_index(raw_index)
        if index is None:
            reader.fail(f"{key} key {show(raw_index)} must be a GPU index (an integer)")
        elif index not in known:
            have = f"gpus are {', '.join(map(str, known))}" if known else "has no gpus"
            reader.fail(f"{key} names GPU {index}, but the host's {have}")
        elif index in lists:
            reader.fail(f"{key} names GPU {index} twice")
        elif not isinstance(items, list):
            reader.fail(f"{key} GPU {index} must be a list of instances, got {show(items)}")
        else:
            lists[index] = items
    return sorted(lists.items())


def _gpu_index(value: object) -> int | None:
    if is_int(value):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _placed(problems: list[str], site: Site, items: list[Any], settings: Settings,
            read: Callable[[list[str], Site, int, object, Settings], T | None]) -> list[T]:
    placed = (read(problems, site, position, item, settings)
              for position, item in enumerate(items))
    return [instance for instance in placed if instance is not None]


def _reader(problems: list[str], kind: str, site: Site, position: int, data: object,
            keys: tuple[str, ...]) -> Reader:
    name = data.get("name") if isinstance(data, Mapping) else None
    label = (f"{kind} instance {name!r}" if isinstance(name, str) and name
             else f"{kind} instance #{position} on {site.host} GPU {site.gpu}")
    return Reader(problems, label, data, keys)


def _vllm(problems: list[str], site: Site, position: int, data: object,
          settings: Settings) -> VllmInstance | None:
    reader = _reader(problems, "vllm", site, position, data, VLLM_KEYS)
    name = reader.string("name", NAME)
    profile_name = reader.string("profile")
    port = reader.integer("port", low=1, high=65535)
    args = read_args(reader)
    env = reader.env("env")
    image = reader.image("image", default="") or settings.images.get("vllm", "")
    profile = settings.profiles.get(profile_name)
    if profile_name and profile_name not in settings.declared_profiles:
        reader.fail(f"profile {profile_name!r} is not a vllm profile "
                    f"(profiles: {', '.join(settings.declared_profiles)})")
    if reader.failed or profile is None:
        return None
    merged = {**profile.args, **args}
    flag_problems(problems, name, image, profile.name, profile.args, args, settings.engines)
    util, length = (merged.get(key) for key in ("gpu_memory_utilization", "max_model_len"))
    for key, value in (("gpu_memory_utilization", util), ("max_model_len", length)):
        if value is None:
            reader.fail(f"args.{key} is set neither by profile {profile.name!r} nor here")
    if reader.failed or not isinstance(util, int | float) or not isinstance(length, int):
        return None
    command = render_args(profile.model_path, profile.served_model_name, merged)
    environment = {**settings.vllm_env, **env, "HF_HUB_OFFLINE": "1"}
    return VllmInstance(
        name=name, host=site.host, address=site.address, bind_address=site.bind_address,
        gpu=site.gpu, position=position, port=port,
        container_name=container_name("vllm", name), image=image, pool=profile.pool,
        served_model_name=profile.served_model_name, model_path=profile.model_path,
        model_dir=f"{settings.vllm_models_dir}/{profile.model_path}",
        gpu_memory_utilization=util, args=command, env=environment,
        weights_gib=profile.weights_gib, overhead_gib=settings.vllm_overhead_gib,
        kv_cache_kib_per_token=profile.kv_cache_kib_per_token, max_model_len=length,
        container=vllm_container(
            name=name, image=settings.registry.reference(image), command=command, env=environment,
            bind_address=site.bind_address, port=port, gpu=site.gpu, pool=profile.pool,
            models_dir=settings.vllm_models_dir, settings=settings.containers),
    )


def _ollama(problems: list[str], site: Site, position: int, data: object,
            settings: Settings) -> OllamaInstance | None:
    reader = _reader(problems, "ollama", site, position, data, OLLAMA_KEYS)
    name = reader.string("name", NAME)
    port = reader.integer("port", low=1, high=65535)
    env = reader.env("env")
    image = reader.image("image", default="") or settings.images.get("ollama", "")
    service = settings.ollama
    if reader.failed or service is None:
        return None
    environment = {**service.env, **env}
    return OllamaInstance(
        name=name, host=site.host, address=site.address, bind_address=site.bind_address,
        gpu=site.gpu, position=position, port=port,
        container_name=container_name("ollama", name), image=image, pool=service.pool,
        model=service.model, models_dir=settings.ollama_models_dir, env=environment,
        memory_gib=service.memory_gib, embedding_dim=service.embedding_dim,
        container=ollama_container(
            name=name, image=settings.registry.reference(image), env=environment,
            bind_address=site.bind_address,
            port=port, gpu=site.gpu, pool=service.pool, models_dir=settings.ollama_models_dir,
            settings=settings.containers),
    )
