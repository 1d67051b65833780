"""The gateway of `memoryx_config.gateway` and its route table."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from memoryx_deploy.inputs.fields import POOL, Reader, show
from memoryx_deploy.schema.stack import Route

GATEWAY_KEYS = ("host", "port", "auth", "api_keys", "routes")
ROUTE_KEYS = ("path", "pool", "strip_prefix", "route_by_model", "exact")
# A location path nginx takes literally.
PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
# --- security (issue 9): authentication is on unless the data says "off" in so many words
AUTH_CHOICES = ("required", "off")
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Any printable ASCII but space, as the gateway compares it (SHA-256, exact).
KEY = re.compile(r"^[!-~]{16,1024}$")
# A key's policy beside its name and key (issue 21): the models it may use (all when absent),
# the requests it may hold at once (from the pools' capacity when absent), its rate (none).
KEY_FIELDS = ("name", "key", "models", "concurrency", "rate")
RATE = re.compile(r"^[1-9][0-9]{0,6}r/[sm]$")


@dataclass
class GatewayInput:
    host: str = ""
    port: int = 0
    auth: str = "required"
    routes: list[Route] = field(default_factory=list)


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
        name = item.get("name") if isinstance(item, Mapping) else None
        label = (f"gateway api_keys {name!r}" if isinstance(name, str) and KEY_NAME.match(name)
                 else f"gateway api_keys[{position}]")
        if not isinstance(item, Mapping) or not {"name", "key"} <= set(item) <= set(KEY_FIELDS):
            problems.append(f"{label}: must be a mapping with name and key, and optionally "
                            "models, concurrency and rate")
            continue
        problems += policy_problems(label, item, served)
        if not isinstance(name, str) or not KEY_NAME.match(name):
            problems.append(f"{label}: name must match {KEY_NAME.pattern}")
        elif name in names:
            problems.append(f"{label}: the name is listed twice")
        else:
            names.append(name)
        if not isinstance(item["key"], str) or not KEY.match(item["key"]):
            problems.append(f"{label}: key must be 16 to 1024 printable ASCII characters "
                            "without spaces (the key is not shown)")
    key_values = [item["key"] for item in keys if isinstance(item, Mapping) and "key" in item]
    if len({str(k) for k in key_values}) != len(key_values):
        problems.append("gateway api_keys: two entries hold the same key")


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


def unserved_models(keys: object, served: Collection[str]) -> list[str]:
    """The models that keys written in the data itself (not left to the vault) name but no pool
    serves: read_gateway checks their shape before the pools are known."""
    if not isinstance(keys, list):
        return []
    return [f"gateway api_keys {item['name']!r}: model {m!r} is not served (served: "
            f"{', '.join(sorted(served))})"
            for item in keys if isinstance(item, Mapping) and isinstance(item.get("models"), list)
            for m in item["models"] if isinstance(m, str) and m and m not in served]
