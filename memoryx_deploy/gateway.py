"""The gateway of `memoryx_config.gateway` and its route table."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memoryx_deploy.fields import POOL, Reader
from memoryx_deploy.model import Route

GATEWAY_KEYS = ("host", "port", "routes")
ROUTE_KEYS = ("path", "pool", "strip_prefix", "route_by_model", "exact")
# A location path nginx takes literally.
PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")


@dataclass
class GatewayInput:
    host: str = ""
    port: int = 0
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

