"""The stack-wide settings of `memoryx_config`: limits, images, vLLM profiles, Ollama."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from memoryx_deploy.inputs.containers import ContainerSettings, read_container_settings
from memoryx_deploy.inputs.engines import Engine, read_engines
from memoryx_deploy.inputs.fields import MODEL, POOL, Reader, show
from memoryx_deploy.inputs.registry import Registry, read_registry
from memoryx_deploy.inputs.variables import CONFIG_KEYS, DEFAULTS, PREFIX
from memoryx_deploy.inputs.vllm_args import ArgValue, read_args

PROFILE_KEYS = ("pool", "model_path", "served_model_name", "weights_gib",
                "kv_cache_kib_per_token", "args")
OLLAMA_KEYS = ("pool", "model", "embedding_dim", "memory_gib", "env")
IMAGE_KEYS = ("vllm", "ollama", "nginx")


@dataclass(frozen=True)
class Profile:
    name: str
    pool: str
    model_path: str
    served_model_name: str
    weights_gib: float
    kv_cache_kib_per_token: float
    args: dict[str, ArgValue]


@dataclass(frozen=True)
class OllamaService:
    pool: str
    model: str
    embedding_dim: int
    memory_gib: float
    env: dict[str, str]


@dataclass
class Settings:
    gpu_utilization_limit: float = 0.0
    vllm_overhead_gib: float = 0.0
    images: dict[str, str] = field(default_factory=dict)
    vllm_env: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    declared_profiles: list[str] = field(default_factory=list)  # including broken ones
    ollama: OllamaService | None = None
    vllm_models_dir: str = ""
    ollama_models_dir: str = ""
    containers: ContainerSettings = field(default_factory=ContainerSettings)
    engines: dict[str, Engine] = field(default_factory=dict)  # image -> what it runs on
    registry: Registry = field(default_factory=Registry)


def read_settings(problems: list[str], config: object) -> tuple[Settings, Reader]:
    top = Reader(problems, "memoryx_config", config, CONFIG_KEYS)
    settings = Settings(
        gpu_utilization_limit=_coerce(top, "gpu_utilization_limit", high=1),
        vllm_overhead_gib=_coerce(top, "vllm_overhead_gib", low=0),
        images=_images(problems, top.raw("images")),
        vllm_env=top.env("vllm_env"),
        ollama=_ollama(problems, top.raw("ollama")),
        vllm_models_dir=_absolute(top, "vllm_models_dir"),
        ollama_models_dir=_absolute(top, "ollama_models_dir"),
        containers=read_container_settings(problems, _optional(top, "containers")),
        engines=_engines(problems, top),
        registry=read_registry(problems, _optional(top, "registry")),
    )
    for name, data in top.mapping("vllm_profiles").items():
        settings.declared_profiles.append(str(name))
        profile = _profile(problems, name, data)
        if profile is not None:
            settings.profiles[profile.name] = profile
    return settings, top


def _optional(top: Reader, key: str) -> Any:
    """An optional key of memoryx_config: absent, the default of its variable (DEFAULTS)."""
    return top.raw(key, DEFAULTS[PREFIX + key])


def _engines(problems: list[str], top: Reader) -> dict[str, Engine]:
    """memoryx_engines and a site's own beside them (memoryx_extra_engines), never both for one image."""
    engines = read_engines(problems, top.raw("engines", {}))
    extra = read_engines(problems, _optional(top, "extra_engines"), "memoryx_extra_engines")
    problems += [f"memoryx_extra_engines {image!r}: already in memoryx_engines; list it once"
                 for image in sorted(set(engines) & set(extra))]
    return {**engines, **extra}


def _absolute(top: Reader, key: str) -> str:
    path = top.string(key, default=_optional(top, key))
    if path and not path.startswith("/"):
        top.fail(f"{key} must be an absolute path, got {path!r}")
    return path.rstrip("/") or path


def _coerce(top: Reader, key: str, low: float | None = None, high: float | None = None) -> float:
    """A number that templating may have turned into a string ("0.95")."""
    value = _optional(top, key)
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        top.fail(f"{key} must be a number, got {show(value)}")
    elif low is not None and number < low:
        top.fail(f"{key} must be at least {low:g}, got {show(value)}")
    elif high is not None and not 0 < number <= high:
        top.fail(f"{key} must be greater than 0 and at most {high:g}, got {show(value)}")
    return number


def _images(problems: list[str], data: object) -> dict[str, str]:
    reader = Reader(problems, "images", data, IMAGE_KEYS)
    images = {key: reader.image(key) for key in ("vllm", "ollama")}
    nginx = reader.image("nginx", default="")
    return {**images, "nginx": nginx} if nginx else images


def _ollama(problems: list[str], data: object) -> OllamaService | None:
    reader = Reader(problems, "ollama", data, OLLAMA_KEYS)
    service = OllamaService(
        pool=reader.string("pool", POOL),
        model=reader.string("model", MODEL),
        embedding_dim=reader.integer("embedding_dim", low=1),
        memory_gib=reader.number("memory_gib", above=0),
        env=reader.env("env"),
    )
    return None if reader.failed else service


def _profile(problems: list[str], name: Any, data: object) -> Profile | None:
    if not isinstance(name, str):
        problems.append(f"vllm profile {show(name)}: the name must be a string")
        return None
    reader = Reader(problems, f"vllm profile {name!r}", data, PROFILE_KEYS)
    profile = Profile(
        name=name,
        pool=reader.string("pool", POOL),
        model_path=_model_path(reader),
        served_model_name=reader.string("served_model_name", MODEL),
        weights_gib=reader.number("weights_gib", low=0),
        kv_cache_kib_per_token=reader.number("kv_cache_kib_per_token", above=0),
        args=read_args(reader),
    )
    return None if reader.failed else profile


def _model_path(reader: Reader) -> str:
    """A path below memoryx_vllm_models_dir."""
    path = reader.string("model_path")
    if path.startswith("/") or ".." in path.split("/"):
        reader.fail(f"model_path must be relative to vllm_models_dir, got {path!r}")
    return path

