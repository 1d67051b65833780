"""Checks across items of a well-typed stack: names, ports, GPU memory."""

from __future__ import annotations

from collections.abc import Mapping

from memoryx_deploy.model.memory import GpuLoad, gpu_loads, kv_gib, needed_gib
from memoryx_deploy.schema.stack import Placement, Pool, Stack

EPSILON = 1e-9


def name_problems(stack: Stack) -> list[str]:
    """Instance names are unique across hosts and kinds (they name containers and members)."""
    problems = []
    seen: dict[str, str] = {}
    placed = ([("vllm", i["name"], i["host"], i["gpu"]) for i in stack["vllm_instances"]]
              + [("ollama", i["name"], i["host"], i["gpu"]) for i in stack["ollama_instances"]])
    for kind, name, host, gpu in placed:
        where = f"{kind} instance on {host} GPU {gpu}"
        if name in seen:
            problems.append(f"instance name {name!r} is used twice: {seen[name]} and {where}")
        else:
            seen[name] = where
    return problems


def port_problems(stack: Stack) -> list[str]:
    """No two services of one host publish the same port."""
    gateway = stack["gateway"]
    services = ([(i["host"], i["port"], f"vllm instance {i['name']!r}")
                 for i in stack["vllm_instances"]]
                + [(i["host"], i["port"], f"ollama instance {i['name']!r}")
                   for i in stack["ollama_instances"]]
                + [(gateway["host"], gateway["port"], "the gateway")])
    problems = []
    users: dict[tuple[str, int], str] = {}
    for host, port, who in services:
        if (host, port) in users:
            problems.append(f"{host}: port {port} is used by both {users[host, port]} and {who}")
        else:
            users[host, port] = who
    return problems


def gpu_problems(stack: Stack, limit: float) -> list[str]:
    problems = []
    for load in gpu_loads(stack):
        problems += _share_problems(load, limit) + _estimate_problems(load)
        problems += _fit_problems(load)
    return problems


def _where(load: GpuLoad) -> str:
    return f"{load.host} GPU {load.gpu['index']}"


def _share_problems(load: GpuLoad, limit: float) -> list[str]:
    if not load.vllm or load.share <= limit + EPSILON:
        return []
    parts = ", ".join(f"{name} {share:.2f}" for name, share in load.shares)
    return [f"{_where(load)}: gpu_memory_utilization sums to {load.share:.2f} ({parts}), "
            f"over the limit {limit:g}"]


def _estimate_problems(load: GpuLoad) -> list[str]:
    if load.estimate_gib <= load.card_gib + EPSILON:
        return []
    parts = ", ".join(f"{name} {gib:.1f}" for name, gib in load.estimates)
    return [f"{_where(load)}: estimated memory {load.estimate_gib:.1f} GiB ({parts}) exceeds "
            f"the card's {load.card_gib:g} GiB ({load.gpu['name']})"]


def _fit_problems(load: GpuLoad) -> list[str]:
    """vLLM refuses to start when its reservation cannot hold one full-length sequence."""
    problems = []
    for i in load.vllm:
        reserved = i["gpu_memory_utilization"] * load.card_gib
        if reserved + EPSILON < needed_gib(i):
            problems.append(
                f"vllm instance {i['name']!r} ({_where(load)}): gpu_memory_utilization "
                f"{i['gpu_memory_utilization']:g} reserves {reserved:.1f} GiB of "
                f"{load.card_gib:g} GiB, less than the {needed_gib(i):.1f} GiB it needs "
                f"(weights {i['weights_gib']:.1f} + overhead {i['overhead_gib']:.1f} + KV of one "
                f"{i['max_model_len']}-token sequence {kv_gib(i, i['max_model_len']):.1f}); "
                "vLLM would refuse to start")
    return problems


# The inventory group each kind of work runs in (the plays of site.yml target these groups).
GROUPS = {"vllm": "llm_hosts", "ollama": "embedding_hosts", "gateway": "gateway_hosts"}


def group_problems(stack: Stack, groups: Mapping[str, list[str]]) -> list[str]:
    """Every host the data uses is in the inventory group whose plays run its work."""
    problems = []
    kinds: list[tuple[str, list[Placement]]] = [
        ("vllm", [*stack["vllm_instances"]]), ("ollama", [*stack["ollama_instances"]])]
    for kind, instances in kinds:
        group = GROUPS[kind]
        members = groups.get(group, [])
        placed: dict[str, list[str]] = {}
        for instance in instances:
            if instance["host"] not in members:
                placed.setdefault(instance["host"], []).append(instance["name"])
        for host, names in placed.items():
            problems.append(
                f"{host} runs {kind} instance{'s' if len(names) > 1 else ''} {', '.join(names)} "
                f"but is not in inventory group {group} ({_hosts(members)}): "
                f"{'they' if len(names) > 1 else 'it'} would never start while the gateway "
                f"routes to {'them' if len(names) > 1 else 'it'}; add {host} to {group}")
    gateway = stack["gateway"]["host"]
    members = groups.get(GROUPS["gateway"], [])
    if gateway not in members:
        problems.append(
            f"gateway host {gateway} (memoryx_gateway.host) is not in inventory group "
            f"gateway_hosts ({_hosts(members)}): nginx would deploy elsewhere while every "
            f"binding and the client config point at {gateway}; make gateway_hosts hold "
            f"{gateway} alone")
    problems += [f"inventory group gateway_hosts holds {host}, but the gateway runs on "
                 f"{gateway} (memoryx_gateway.host) alone; remove {host} from gateway_hosts"
                 for host in members if host != gateway]
    return problems


def _hosts(members: list[str]) -> str:
    return f"its hosts: {', '.join(members)}" if members else "it has no hosts"


EMBEDDINGS = "embeddings"  # the entry of the Ollama (embedding) pool


GATEWAY = "gateway"  # the entry of the gateway itself: its URL and the CA bundle to trust (TLS)


CONSTANTS = {"base_url": "BASE_URL", "model": "MODEL", "dimensions": "DIM", "url": "URL",
             "ca_bundle": "CA_BUNDLE"}


def constant_problems(pools: Mapping[str, Pool]) -> list[str]:
    """Two pools whose client constants (EMBED_*, <POOL>_*) would be the same names."""
    problems = []
    owners: dict[str, str] = {prefix(GATEWAY): "(the gateway entry)"}
    for name, pool in sorted(pools.items(), key=lambda item: item[1]["kind"] != "ollama"):
        key = prefix(EMBEDDINGS if pool["kind"] == "ollama" else name)
        if key in owners:
            problems.append(f"pool {name!r}: its client constants ({key}_*) clash with those "
                            f"of pool {owners[key]!r}; rename the pool")
        else:
            owners[key] = name
    return problems


def prefix(key: str) -> str:
    """The constant prefix of an entry: EMBED for the embeddings, else the pool in capitals."""
    return "EMBED" if key == EMBEDDINGS else key.upper().replace("-", "_")
