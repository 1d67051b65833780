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

from memoryx_deploy.inputs.containers import GATEWAY_CONTAINERS
from memoryx_deploy.inputs.engines import engine_views
from memoryx_deploy.inputs.fields import show
from memoryx_deploy.inputs.gateway import check_auth, read_gateway, unserved_models
from memoryx_deploy.inputs.instances import read_hosts
from memoryx_deploy.inputs.monitoring import read_monitoring
from memoryx_deploy.inputs.registry import archive_problems, secret_problems
from memoryx_deploy.inputs.scopes import scope_problems
from memoryx_deploy.inputs.settings import read_settings
from memoryx_deploy.inputs.site import read_deploy, read_secrets, vault_tls
from memoryx_deploy.inputs.tls import read_tls, split_tls
from memoryx_deploy.inputs.variables import choice_problems, config_from_variables, defaults_taken, unknown_problems
from memoryx_deploy.model.checks import constant_problems, gpu_problems, group_problems, name_problems, port_problems
from memoryx_deploy.model.hostview import host_views
from memoryx_deploy.model.monitoring import build_monitoring, monitoring_problems
from memoryx_deploy.model.pools import build_pools, declaration_problems, declared_pools, route_problems
from memoryx_deploy.schema.stack import Embedding, Gateway, GatewayContainers, Stack, StackError

Groups = Mapping[str, list[str]]


def stack_from_variables(variables: Mapping[str, Any], names: list[str],
                         addresses: Mapping[str, str], groups: Groups,
                         sources: list[str] | None = None, playbook_dir: str = "",
                         secrets: bool = True) -> Stack:
    """The stack from the controller's memoryx_* `variables` (`names`: every memoryx_* variable
    it has), refusing misspelt and missing ones, and ones the inventory `sources` or the
    playbook folder's group_vars/host_vars set for some hosts only. `secrets`: the vault's
    secrets are among the variables and are checked (the CLI reads no vault)."""
    problems = unknown_problems(names) + choice_problems(variables)
    if sources is not None:
        problems += scope_problems(sources, playbook_dir, groups)
    config = config_from_variables(variables, problems)
    deploy = read_deploy(problems, variables)
    if problems:
        raise StackError(problems)
    stack = build_stack(config, addresses, groups, vault_tls=vault_tls(variables))
    stack["deploy"] = deploy
    stack["secrets"] = read_secrets(variables, stack["gateway"]["tls"]["certificate"])
    stack["defaults_taken"] = defaults_taken(variables)
    problems = site_problems(stack, variables, secrets)
    if problems:
        raise StackError(problems)
    return stack


def site_problems(stack: Stack, variables: Mapping[str, Any], secrets: bool = True) -> list[str]:
    """What the secrets must be (the registry's login needs its password, the gateway's "required"
    its keys, each well formed) and what the image source allows (an archive cannot carry an image
    pinned by digest), checked once the stack itself is valid."""
    problems: list[str] = []
    names = stack["secrets"]
    keys = variables[names["gateway_api_keys"]] if names["gateway_api_keys"] else []
    if secrets:
        check_auth(problems, stack["gateway"]["auth"], keys, served=stack["gateway"]["models"])
    if isinstance(keys, list):
        stack["gateway"]["api_key_names"] = [str(k.get("name")) for k in keys if isinstance(k, Mapping)]
    problems += [f"gateway trusted_clients {t['name']!r}: a key has the same name (a policy's "
                 "name says who called: give each its own)" for t in stack["gateway"]["trusted_clients"]
                 if t["name"] in stack["gateway"]["api_key_names"]]
    password = variables[names["registry_password"]] if names["registry_password"] else ""
    if not secrets:
        password = "unread"  # the CLI's: the vault's password is not judged
    images = [i["image"] for i in [*stack["vllm_instances"], *stack["ollama_instances"]]]
    images += [stack["gateway"]["image"]] if stack["gateway"]["image"] else []
    return (problems + secret_problems(stack["registry"], password)
            + archive_problems(sorted(set(images)), stack["deploy"]["image_source"]))


def build_stack(config: Mapping[str, Any], addresses: Mapping[str, str],
                groups: Groups | None = None, vault_tls: bool = False) -> Stack:
    """The stack, or StackError listing every problem. With `groups` (inventory group ->
    hosts), every host must also be in the group whose plays run its work. `vault_tls`: the
    vault holds a gateway certificate and key. The site's settings take their defaults and no
    secret is named: stack_from_variables fills both from the variables."""
    if not isinstance(config, Mapping):
        raise StackError([f"memoryx_config: must be a mapping, got {show(config)}"])
    problems: list[str] = []
    settings, top = read_settings(problems, config)
    problems += declaration_problems(settings)
    known = _addresses(problems, addresses)
    gpu_hosts = top.mapping("gpu_hosts")
    gateway_data, tls_data = split_tls(top.raw("gateway"))  # issue 11: memoryx_gateway.tls
    gateway = read_gateway(problems, gateway_data, known, gpu_hosts)
    tls = read_tls(problems, tls_data, gateway.host, known.get(gateway.host, ""), gateway.port,
                   vault_tls)
    hosts = read_hosts(problems, gpu_hosts, known, gateway.host, settings)
    monitoring = read_monitoring(problems, top.raw("monitoring", None), known, gateway.host)
    if problems:
        raise StackError(problems)
    pools = build_pools(hosts.vllm, hosts.ollama)
    served = {m for pool in pools.values() for m in pool["models"]}
    unserved = (unserved_models(gateway_data.get("api_keys"), served)
                if isinstance(gateway_data, Mapping) else [])
    unserved += unserved_models(gateway.trusted_clients, served, "trusted_clients")
    if unserved:
        raise StackError(unserved)
    image = settings.registry.reference(settings.images.get("nginx", ""))
    stack = Stack(
        hosts=hosts.hosts,
        by_host=host_views(list(known), hosts.hosts, hosts.vllm, hosts.ollama, gateway.host,
                           image),
        vllm_instances=hosts.vllm,
        ollama_instances=hosts.ollama,
        pools=pools,
        gateway=Gateway(host=gateway.host, address=known[gateway.host], port=gateway.port,
                        image=image, routes=gateway.routes, tls=tls, auth=gateway.auth,
                        api_key_names=[], trusted_clients=gateway.trusted_clients,
                        containers=GatewayContainers(router=GATEWAY_CONTAINERS["router"],
                                                     client=GATEWAY_CONTAINERS["client"]),
                        restart_policy=settings.containers.restart_policy,
                        log=settings.containers.log(),
                        router_log=settings.containers.access_log(),
                        models={m: name for name, pool in pools.items() for m in pool["models"]}),
        registry=settings.registry.view(),
        monitoring=build_monitoring(monitoring, hosts.hosts, hosts.vllm, gateway.host, known),
        ollama=Embedding(pool=settings.ollama.pool, model=settings.ollama.model,
                         embedding_dim=settings.ollama.embedding_dim) if settings.ollama
        else Embedding(pool="", model="", embedding_dim=0),
        engines=engine_views(settings.engines),
        deploy=read_deploy([], {}),
        secrets=read_secrets({}, ""),
        defaults_taken=[],
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
