"""The gateway of `memoryx_config.gateway` and its route table."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from memoryx_deploy.inputs.fields import POOL, Reader, show
from memoryx_deploy.schema.stack import Route

GATEWAY_KEYS = ("host", "port", "auth", "api_keys", "routes", "trusted_clients")
ROUTE_KEYS = ("path", "pool", "strip_prefix", "route_by_model", "exact")
# A location path nginx takes literally.
PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
# --- security (issue 9): authentication is on unless the data says "off" in so many words
AUTH_CHOICES = ("required", "off")
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Any printable ASCII but space, as the gateway compares it (SHA-256, exact).
KEY = re.compile(r"^[!-~]{16,1024}$")
# A key's policy beside its name and key (issue 21): the models it may use (all when absent),
# the requests it may hold at once (from the pools' capacity when absent), its rate (none). A
# trusted client (networks that may call without a key, off by default) has the same policy.
POLICY_FIELDS = ("models", "concurrency", "rate")
RATE = re.compile(r"^[1-9][0-9]{0,6}r/[sm]$")


@dataclass
class GatewayInput:
    host: str = ""
    port: int = 0
    auth: str = "required"
    routes: list[Route] = field(default_factory=list)
    trusted_clients: list[dict[str, Any]] = field(default_factory=list)


def read_gateway(problems: list[str], data: object, addresses: Mapping[str, str],
                 gpu_hosts: Mapping[Any, Any]) -> GatewayInput:
    reader = Reader(problems, "gateway", data, GATEWAY_KEYS)
    gateway = GatewayInput(host=reader.string("host"), port=reader.integer("port", 1, 65535))
    if gateway.host and gateway.host not in addresses:
        reader.fail(f"host {gateway.host!r} is not in the inventory "
                    f"(hosts: {', '.join(sorted(addresses))})")
    elif gateway.host and not addresses[gateway.host] and gateway.host not in gpu_hosts:
        reader.fail(f"host {gateway.host!r} has no address (ansible_host) in the inventory")
    auth = reader.raw("auth", "required")
    gateway.auth = auth if auth in AUTH_CHOICES else "required"
    if "api_keys" in reader.data:
        check_auth(problems, auth, reader.raw("api_keys"))
    elif auth not in AUTH_CHOICES:
        check_auth(problems, auth, [])
    gateway.trusted_clients = read_trusted(problems, gateway.auth, reader.raw("trusted_clients", []))
    for position, item in enumerate(reader.sequence("routes")):
        route = _route(problems, position, item)
        if route is not None and route["path"] in [seen["path"] for seen in gateway.routes]:
            problems.append(f"gateway route {route['path']!r}: the path is listed twice")
        elif route is not None:
            gateway.routes.append(route)
    return gateway


def _route(problems: list[str], position: int, data: object) -> Route | None:
    path = data.get("path") if isinstance(data, Mapping) else None
    label = (f"gateway route {path!r}" if isinstance(path, str) and path
             else f"gateway routes[{position}]")
    reader = Reader(problems, label, data, ROUTE_KEYS)
    route = Route(
        path=reader.string("path", PATH),
        pool=reader.optional_string("pool", POOL),
        strip_prefix=reader.boolean("strip_prefix", False),
        route_by_model=reader.boolean("route_by_model", False),
        exact=False,
    )
    route["exact"] = reader.boolean("exact", not route["path"].endswith("/"))
    if route["pool"] is None and not route["route_by_model"]:
        reader.fail("needs a pool or route_by_model: true")
    if route["pool"] is not None and route["route_by_model"]:
        reader.fail("sets both pool and route_by_model; choose one")
    if route["strip_prefix"] and not route["path"].endswith("/"):
        reader.fail("strip_prefix needs a path ending with '/'")
    return None if reader.failed else route


def check_auth(problems: list[str], auth: object, keys: object,
               served: Collection[str] | None = None) -> None:
    """`auth` is "required" (the default) or "off"; "required" needs at least one key. The
    keys are `{name, key}` mappings with an optional policy (`models`, each one of `served`
    when the served models are known; `concurrency`; `rate`); a message names a key by its
    name, never shows a key.
    A key list still written as a Jinja expression (the CLI reads the YAML raw; Ansible
    renders it from Vault first) cannot be judged here and is left alone."""
    if auth not in AUTH_CHOICES:
        problems.append(f"gateway: auth must be 'required' or 'off' (quoted: YAML reads a bare "
                        f"off as false), got {show(auth)}")
        return
    if isinstance(keys, str) and "{{" in keys:
        return
    if not isinstance(keys, list):
        problems.append(f"gateway: api_keys must be a list of {{name, key}}, got {show(keys)}")
        return
    if auth == "required" and not keys:
        problems.append("gateway: auth is 'required' but api_keys is empty: put the keys in Vault "
                        "(vault_memoryx_gateway_api_keys: [{name: ..., key: ...}]) or set "
                        "memoryx_gateway.auth: \"off\" to run the gateway without authentication")
    names: list[str] = []
    for position, item in enumerate(keys):
        label = _entry(problems, "api_keys", "key", position, item)
        if label is None:
            continue
        problems += policy_problems(label, item, served)
        problems += _name_problems(label, item["name"], names)
        if not isinstance(item["key"], str) or not KEY.match(item["key"]):
            problems.append(f"{label}: key must be 16 to 1024 printable ASCII characters "
                            "without spaces (the key is not shown)")
    key_values = [item["key"] for item in keys if isinstance(item, Mapping) and "key" in item]
    if len({str(k) for k in key_values}) != len(key_values):
        problems.append("gateway api_keys: two entries hold the same key")


def _entry(problems: list[str], field: str, required: str, position: int, item: object) -> str | None:
    """The label of entry `position` of gateway `field` (api_keys, trusted_clients): by its name
    when the name is valid, else by its position. None, with the problem noted, when the entry
    is not a mapping of name, `required` and a key's policy fields."""
    name = item.get("name") if isinstance(item, Mapping) else None
    label = (f"gateway {field} {name!r}" if isinstance(name, str) and KEY_NAME.match(name)
             else f"gateway {field}[{position}]")
    if not isinstance(item, Mapping) or not {"name", required} <= set(item) <= {"name", required, *POLICY_FIELDS}:
        problems.append(f"{label}: must be a mapping with name and {required}, and optionally "
                        "models, concurrency and rate")
        return None
    return label


def _name_problems(label: str, name: object, names: list[str]) -> list[str]:
    """A name that is malformed or already in `names`; a good new one joins `names`."""
    if not isinstance(name, str) or not KEY_NAME.match(name):
        return [f"{label}: name must match {KEY_NAME.pattern}"]
    if name in names:
        return [f"{label}: the name is listed twice"]
    names.append(name)
    return []


def policy_problems(label: str, item: Mapping[str, Any], served: Collection[str] | None) -> list[str]:
    """What is wrong with a key's policy: its models, concurrency and rate."""
    problems: list[str] = []
    models = item.get("models")
    if "models" in item and (not isinstance(models, list) or not models
                             or not all(isinstance(m, str) and m for m in models)):
        problems.append(f"{label}: models must be a non-empty list of served model names "
                        f"(leave it out to allow every model), got {show(models)}")
    elif isinstance(models, list) and served is not None:
        problems += [f"{label}: model {m!r} is not served (served: {', '.join(sorted(served))})"
                     for m in models if m not in served]
    concurrency = item.get("concurrency")
    if "concurrency" in item and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                  or concurrency < 1):
        problems.append(f"{label}: concurrency must be a whole number of requests at once, at "
                        f"least 1, got {show(concurrency)}")
    rate = item.get("rate")
    if "rate" in item and not (isinstance(rate, str) and RATE.match(rate)):
        problems.append(f"{label}: rate must be requests per second or minute, as nginx writes "
                        f"it (e.g. 10r/s, 600r/m), got {show(rate)}")
    return problems


def unserved_models(keys: object, served: Collection[str], field: str = "api_keys") -> list[str]:
    """The models that keys written in the data itself (not left to the vault), or trusted
    clients (`field`), name but no pool serves: read_gateway checks their shape before the
    pools are known."""
    if not isinstance(keys, list):
        return []
    return [f"gateway {field} {item['name']!r}: model {m!r} is not served (served: "
            f"{', '.join(sorted(served))})"
            for item in keys if isinstance(item, Mapping) and isinstance(item.get("models"), list)
            for m in item["models"] if isinstance(m, str) and m and m not in served]


def read_trusted(problems: list[str], auth: str, data: object) -> list[dict[str, Any]]:
    """The trusted clients: [{name, networks, and a key's policy fields}], networks in CIDR form.
    Only with authentication on (off, every client is keyless already), never every address
    (that is auth "off" in disguise), each network under one name."""
    if not isinstance(data, list):
        problems.append(f"gateway: trusted_clients must be a list of {{name, networks}}, got {show(data)}")
        return []
    if data and auth != "required":
        problems.append("gateway: trusted_clients need auth 'required' (with auth off every client "
                        "calls without a key already)")
    trusted: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for position, item in enumerate(data):
        label = _entry(problems, "trusted_clients", "networks", position, item)
        if label is None:
            continue
        before = len(problems)
        problems += _name_problems(label, item["name"], [t["name"] for t in trusted])
        networks = _networks(problems, label, item["networks"], seen)
        problems += policy_problems(label, item, None)
        if len(problems) == before:
            trusted.append({**item, "networks": networks})
    return trusted


def _networks(problems: list[str], label: str, data: object, seen: dict[str, str]) -> list[str]:
    if not isinstance(data, list) or not data:
        problems.append(f"{label}: networks must be a non-empty list of addresses or networks "
                        f"(CIDR), got {show(data)}")
        return []
    networks: list[str] = []
    for value in data:
        try:
            network = ipaddress.ip_network(str(value), strict=False) if isinstance(value, str) else None
        except ValueError:
            network = None
        if network is None:
            problems.append(f"{label}: {show(value)} is not an address or a network (CIDR)")
        elif network.prefixlen == 0:
            problems.append(f"{label}: {network} is every address: that is auth \"off\"; name the "
                            "clients' networks")
        elif str(network) in seen:
            problems.append(f"{label}: {network} is already trusted by {seen[str(network)]}")
        else:
            seen[str(network)] = label
            networks.append(str(network))
    return networks
