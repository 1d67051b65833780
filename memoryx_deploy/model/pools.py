"""Pools: the instances serving one model, which the gateway balances over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from memoryx_deploy.inputs.settings import Settings
from memoryx_deploy.schema.stack import OllamaInstance, Placement, Pool, PoolMember, Route, VllmInstance

Kind = Literal["vllm", "ollama"]


# The engines' own defaults: vLLM's OpenAI server runs 256 sequences at once unless
# --max-num-seqs says otherwise; Ollama serves one request per model unless OLLAMA_NUM_PARALLEL.
VLLM_MAX_NUM_SEQS = 256
OLLAMA_NUM_PARALLEL = 1


def build_pools(vllm: list[VllmInstance], ollama: list[OllamaInstance]) -> dict[str, Pool]:
    """Every pool that has a member, members in instance order."""
    pools: dict[str, Pool] = {}
    for instance in vllm:
        _join(pools, "vllm", instance["served_model_name"], instance, max_num_seqs(instance["args"]))
    for service in ollama:
        parallel = service["env"].get("OLLAMA_NUM_PARALLEL", "")
        _join(pools, "ollama", service["model"], service,
              int(parallel) if parallel.isdigit() and int(parallel) > 0 else OLLAMA_NUM_PARALLEL)
    return pools


def max_num_seqs(args: list[str]) -> int:
    """--max-num-seqs of a vLLM command line (either form), else vLLM's default."""
    for position, arg in enumerate(args):
        value = (arg.split("=", 1)[1] if arg.startswith("--max-num-seqs=")
                 else args[position + 1] if arg == "--max-num-seqs" and position + 1 < len(args) else "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return VLLM_MAX_NUM_SEQS


def _join(pools: dict[str, Pool], kind: Kind, model: str, instance: Placement, capacity: int) -> None:
    pool = pools.setdefault(instance["pool"], Pool(kind=kind, models=[], members=[], capacity=0))
    pool["capacity"] += capacity
    if model not in pool["models"]:
        pool["models"].append(model)
    pool["members"].append(PoolMember(name=instance["name"], host=instance["host"],
                                      address=instance["bind_address"], port=instance["port"]))


def declared_pools(settings: Settings) -> list[tuple[str, Kind, str, str]]:
    """(pool, kind, model, who declares it) for every profile and the Ollama service."""
    declared: list[tuple[str, Kind, str, str]] = [
        (profile.pool, "vllm", profile.served_model_name, f"vllm profile {profile.name!r}")
        for profile in settings.profiles.values()
    ]
    if settings.ollama is not None:
        service = settings.ollama
        declared.append((service.pool, "ollama", service.model, "the ollama service"))
    return declared


def declaration_problems(settings: Settings) -> list[str]:
    """One kind and one model per pool; one pool per model."""
    problems = []
    pools: dict[str, tuple[Kind, str, str]] = {}
    models: dict[str, tuple[str, str]] = {}
    for pool, kind, model, source in declared_pools(settings):
        first_kind, first_model, first_source = pools.setdefault(pool, (kind, model, source))
        if first_kind != kind:
            problems.append(f"pool {pool!r} mixes kinds: {first_source} ({first_kind}) "
                            f"and {source} ({kind})")
        elif first_model != model:
            problems.append(f"pool {pool!r} serves two models: {first_model} ({first_source}) "
                            f"and {model} ({source})")
        owner, owner_source = models.setdefault(model, (pool, source))
        if owner != pool:
            problems.append(f"served model {model!r} is served by two pools: {owner!r} "
                            f"({owner_source}) and {pool!r} ({source})")
    return problems


def route_problems(routes: list[Route], pools: Mapping[str, Pool],
                   declared: list[str]) -> list[str]:
    """Routes to pools without backends, and served models no route reaches."""
    problems = []
    for route in routes:
        target = route["pool"]
        if target is not None and target not in pools:
            why = ("has no backend" if target in declared
                   else f"is not a pool (pools: {', '.join(sorted(set(declared)))})")
            problems.append(f"gateway route {route['path']!r}: pool {target!r} {why}")
    routed = {route["pool"] for route in routes}
    by_model = any(route["route_by_model"] for route in routes)
    for name, pool in pools.items():
        if name in routed or (by_model and pool["kind"] == "vllm"):
            continue
        problems += [f"served model {model!r} (pool {name!r}) is reached by no gateway route"
                     for model in pool["models"]]
    return problems
