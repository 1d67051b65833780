"""The plan: one table row per GPU (what runs there, what it reserves, what is left)."""

from __future__ import annotations

from dataclasses import dataclass

from memoryx_deploy.model.memory import gpu_loads, kv_capacity_tokens
from memoryx_deploy.schema.stack import Stack

HEADER = ("HOST", "GPU", "INSTANCES", "PORTS", "SHARE", "RESERVED", "ESTIMATE", "HEADROOM",
          "KV CAPACITY (tokens)")


@dataclass(frozen=True)
class PlanRow:
    host: str
    gpu: int
    gpu_name: str
    card_gib: float
    instances: list[str]
    ports: list[int]
    share: float  # sum of gpu_memory_utilization (+ Ollama's memory / card)
    reserved_gib: float  # share x card
    estimate_gib: float  # weights + overhead + one full-length sequence of KV (+ Ollama)
    headroom_gib: float  # card - max(reserved, estimate)
    kv_tokens: list[int]  # per vLLM instance: KV cache tokens its reservation holds


def plan_rows(stack: Stack) -> list[PlanRow]:
    return [
        PlanRow(
            host=load.host, gpu=load.gpu["index"], gpu_name=load.gpu["name"],
            card_gib=load.card_gib,
            instances=[i["name"] for i in load.vllm] + [i["name"] for i in load.ollama],
            ports=[i["port"] for i in load.vllm] + [i["port"] for i in load.ollama],
            share=load.share, reserved_gib=load.reserved_gib, estimate_gib=load.estimate_gib,
            headroom_gib=load.headroom_gib,
            kv_tokens=[kv_capacity_tokens(i, load.card_gib) for i in load.vllm],
        )
        for load in gpu_loads(stack)
    ]


def format_plan(stack: Stack) -> list[str]:
    """The table, then one line per pool and one for the gateway."""
    table = [HEADER] + [_cells(row) for row in plan_rows(stack)]
    widths = [max(len(cells[column]) for cells in table) for column in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
             .rstrip() for cells in table]
    return [*lines, "", *_pool_lines(stack)]


def _cells(row: PlanRow) -> tuple[str, ...]:
    return (
        row.host,
        f"{row.gpu} {row.gpu_name} ({row.card_gib:g} GiB)",
        ", ".join(row.instances) or "-",
        ", ".join(map(str, row.ports)) or "-",
        f"{row.share:.2f}",
        f"{row.reserved_gib:.1f} GiB",
        f"{row.estimate_gib:.1f} GiB",
        f"{row.headroom_gib:.1f} GiB",
        ", ".join(map(str, row.kv_tokens)) or "-",
    )


def _pool_lines(stack: Stack) -> list[str]:
    lines = []
    for name, pool in stack["pools"].items():
        members = ", ".join(f"{m['name']} {m['address']}:{m['port']}" for m in pool["members"])
        lines.append(f"pool {name} ({pool['kind']}, {', '.join(pool['models'])}): {members}")
    gateway = stack["gateway"]
    lines.append(f"gateway {gateway['host']} {gateway['address']}:{gateway['port']}: "
                 f"{len(gateway['routes'])} routes")
    lines.append(_registry_line(stack))
    return lines


def _registry_line(stack: Stack) -> str:
    registry = stack["registry"]
    if registry["mode"] == "direct":
        return "registry: direct (each image from its own registry)"
    how = [registry["url"]]
    how += [f"prefix {registry['prefix']}"] if registry["prefix"] else []
    how += [f"login {registry['username']}"] if registry["username"] else []
    how += [f"CA {registry['ca_file']}"] if registry["ca_file"] else []
    return f"registry: {registry['mode']} {', '.join(how)}"
