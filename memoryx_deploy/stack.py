"""`build_stack`: memoryx_config + the inventory -> the normalized stack of docs/design.md.

Problems are found in two rounds: first every type, shape and reference problem of the items
themselves; then, once every item is well formed, the problems across items (names, ports,
GPU memory, routes, inventory groups). Each round reports everything it finds.
`stack_from_variables` is the preflight's entry: the same, from Ansible's memoryx_* variables
as the controller and every host see them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memoryx_deploy.checks import gpu_problems, group_problems, name_problems, port_problems
from memoryx_deploy.client_config import constant_problems
from memoryx_deploy.fields import show
from memoryx_deploy.gateway import read_gateway
from memoryx_deploy.hostview import host_views
from memoryx_deploy.instances import read_hosts
from memoryx_deploy.model import Gateway, Stack, StackError
from memoryx_deploy.monitoring import build_monitoring, monitoring_problems, read_monitoring
from memoryx_deploy.pools import build_pools, declaration_problems, declared_pools, route_problems
from memoryx_deploy.registry import archive_problems, secret_problems
from memoryx_deploy.scopes import scope_problems
from memoryx_deploy.settings import read_settings
from memoryx_deploy.tls import read_tls, split_tls
from memoryx_deploy.variables import choice_problems, config_from_variables, unknown_problems

Groups = Mapping[str, list[str]]


def stack_from_variables(variables: Mapping[str, Any], names: list[str],
                         addresses: Mapping[str, str], groups: Groups,
                         sources: list[str] | None = None, playbook_dir: str = "") -> Stack:
    """The stack from the controller's memoryx_* `variables` (`names`: every memoryx_* variable
    it has), refusing misspelt and missing ones, and ones the inventory `sources` or the
    playbook folder's group_vars/host_vars set for some hosts only."""
    problems = unknown_problems(names) + choice_problems(variables)
    if sources is not None:
        problems += scope_problems(sources, playbook_dir, groups)
    config = config_from_variables(variables, problems)
    if problems:
        raise StackError(problems)
    stack = build_stack(config, addresses, groups)
    problems = image_source_problems(stack, variables)
    if problems:
        raise StackError(problems)
    return stack


def image_source_problems(stack: Stack, variables: Mapping[str, Any]) -> list[str]:
    """The registry's login needs its password from the vault, and an archive cannot carry an
    image pinned by digest (checked once the stack itself is valid)."""
    images = [i["image"] for i in [*stack["vllm_instances"], *stack["ollama_instances"]]]
    images += [stack["gateway"]["image"]] if stack["gateway"]["image"] else []
    return (secret_problems(stack["registry"], variables.get("memoryx_registry_password"))
            + archive_problems(sorted(set(images)), variables.get("memoryx_image_source")))


def build_stack(config: Mapping[str, Any], addresses: Mapping[str, str],
                groups: Groups | None = None) -> Stack:
    """The stack, or StackError listing every problem. With `groups` (inventory group ->
    hosts), every host must also be in the group whose plays run its work."""
    if not isinstance(config, Mapping):
        raise StackError([f"memoryx_config: must be a mapping, got {show(config)}"])
    problems: list[str] = []
    settings, top = read_settings(problems, config)
    problems += declaration_problems(settings)
    known = _addresses(problems, addresses)
    gpu_hosts = top.mapping("gpu_hosts")
    gateway_data, tls_data = split_tls(top.raw("gateway"))  # issue 11: memoryx_gateway.tls
    gateway = read_gateway(problems, gateway_data, known, gpu_hosts)
    tls = read_tls(problems, tls_data, gateway.host, known.get(gateway.host, ""), gateway.port)
    hosts = read_hosts(problems, gpu_hosts, known, gateway.host, settings)
    monitoring = read_monitoring(problems, top.raw("monitoring", None), known, gateway.host)
    if problems:
        raise StackError(problems)
    pools = build_pools(hosts.vllm, hosts.ollama)
    image = settings.registry.reference(settings.images.get("nginx", ""))
    stack = Stack(
        hosts=hosts.hosts,
        by_host=host_views(list(known), hosts.hosts, hosts.vllm, hosts.ollama, gateway.host,
                           image),
        vllm_instances=hosts.vllm,
        ollama_instances=hosts.ollama,
        pools=pools,
        gateway=Gateway(host=gateway.host, address=known[gateway.host], port=gateway.port,
                        image=image, routes=gateway.routes, tls=tls,
                        log=settings.containers.log(),
                        router_log=settings.containers.access_log(),
                        models={m: name for name, pool in pools.items() for m in pool["models"]}),
        registry=settings.registry.view(),
        monitoring=build_monitoring(monitoring, hosts.hosts, hosts.vllm, gateway.host, known),
    )
    declared = [pool for pool, *_ in declared_pools(settings)]
    problems = (route_problems(gateway.routes, pools, declared) + name_problems(stack)
                + port_problems(stack) + gpu_problems(stack, settings.gpu_utilization_limit)
                + constant_problems(pools) + monitoring_problems(stack)
                + (group_problems(stack, groups) if groups is not None else []))
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
