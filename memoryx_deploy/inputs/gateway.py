"""The gateway of `memoryx_config.gateway` and its route table."""

from __future__ import annotations

import re
from collections.abc import Mapping
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


def check_auth(problems: list[str], auth: object, keys: object) -> None:
    """`auth` is "required" (the default) or "off"; "required" needs at least one key. The
    keys are `{name, key}` mappings; a message names a key by its name, never shows a key.
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
        if not isinstance(item, Mapping) or set(item) != {"name", "key"}:
            problems.append(f"{label}: must be a mapping with exactly name and key")
            continue
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
