"""`build_stack`: memoryx_config + inventory addresses -> the normalized stack of docs/design.md.

Problems are found in two rounds: first every type, shape and reference problem of the items
themselves; then, once every item is well formed, the problems across items (names, ports,
GPU memory, routes). Each round reports everything it finds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memoryx_deploy.checks import gpu_problems, name_problems, port_problems
from memoryx_deploy.fields import show
from memoryx_deploy.gateway import read_gateway
from memoryx_deploy.instances import read_hosts
from memoryx_deploy.model import Gateway, Stack, StackError
from memoryx_deploy.pools import build_pools, declaration_problems, declared_pools, route_problems
from memoryx_deploy.settings import read_settings


def build_stack(config: Mapping[str, Any], addresses: Mapping[str, str]) -> Stack:
    """The stack, or StackError listing every problem."""
    if not isinstance(config, Mapping):
        raise StackError([f"memoryx_config: must be a mapping, got {show(config)}"])
    problems: list[str] = []
    settings, top = read_settings(problems, config)
    problems += declaration_problems(settings)
    known = _addresses(problems, addresses)
    gpu_hosts = top.mapping("gpu_hosts")
    gateway = read_gateway(problems, top.raw("gateway"), known, gpu_hosts)
    hosts = read_hosts(problems, gpu_hosts, known, gateway.host, settings)
    if problems:
        raise StackError(problems)
    pools = build_pools(hosts.vllm, hosts.ollama)
    stack = Stack(
        hosts=hosts.hosts,
        vllm_instances=hosts.vllm,
        ollama_instances=hosts.ollama,
        pools=pools,
        gateway=Gateway(host=gateway.host, address=known[gateway.host], port=gateway.port,
                        routes=gateway.routes,
                        models={m: name for name, pool in pools.items() for m in pool["models"]}),
    )
    declared = [pool for pool, *_ in declared_pools(settings)]
    problems = (route_problems(gateway.routes, pools, declared) + name_problems(stack)
                + port_problems(stack) + gpu_problems(stack, settings.gpu_utilization_limit))
    if problems:
        raise StackError(problems)
    return stack


def _addresses(problems: list[str], addresses: object) -> dict[str, str]:
    """inventory hostname -> address; anything but a non-empty string counts as missing."""
    if not isinstance(addresses, Mapping):
        problems.append("addresses must be a mapping of inventory hostname to address, "
                        f"got {show(addresses)}")
        return {}
    return {str(host): value if isinstance(value, str) else ""
            for host, value in addresses.items()}
