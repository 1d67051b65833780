"""`memoryx_monitoring` read and validated: the Prometheus host, its ports and intervals, and the
alert thresholds (model/monitoring.py builds the targets and exporters from it and the stack;
render/monitoring.py, Prometheus's files). Absent: monitoring off.

What is scraped:
- every vLLM instance's `/metrics` (job `vllm`), labelled with its instance name, host, pool,
  GPU and served model;
- the gateway (job `gateway`): mtail on the gateway host, fed by the router's metrics log
  (roles/gateway_mtail: requests by pool, model and status, upstream time);
- every GPU host's node exporter (job `node`), whose textfile collector carries the GPUs'
  memory and utilisation read from nvidia-smi (roles/node_exporter_gpu);
- Prometheus itself (job `prometheus`).

The exporters listen on their host's address and admit only the Prometheus host (role
backend_firewall on the INPUT chain); the vLLM ports admit it beside the gateway host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memoryx_deploy.inputs.containers import LOOPBACK
from memoryx_deploy.inputs.fields import Reader
from memoryx_deploy.schema.stack import Alerts

if TYPE_CHECKING:  # model.py imports this module's Monitoring
    pass

MONITORING_KEYS = ("enabled", "host", "listen_address", "port", "scrape_interval",
                   "evaluation_interval", "retention", "node_exporter_port", "mtail_port",
                   "alerts")
ALERT_KEYS = ("instance_down_for", "pool_down_for", "kv_cache_usage_above", "kv_cache_for",
              "requests_waiting_above", "requests_waiting_for")
# Prometheus's duration syntax (units in decreasing order, each at most once).
DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?"
                      r"(?:(\d+)ms)?$")
UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$")
ANY_ADDRESS = "0.0.0.0"
# The directory of mtail's datagram socket on the gateway host, which the router mounts.
METRICS_SOCKET_DIR = "/var/lib/memoryx/mtail"
# Prometheus's own default scrape timeout: a shorter interval bounds it.
SCRAPE_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class MonitoringInput:
    """`memoryx_monitoring` as read; absent: monitoring off."""

    enabled: bool = False
    host: str = ""
    listen_address: str = ""
    port: int = 9090
    scrape_interval: str = "15s"
    evaluation_interval: str = "15s"
    retention: str = "15d"
    node_exporter_port: int = 9100
    mtail_port: int = 3903
    alerts: Alerts | None = None


DEFAULT_ALERTS = Alerts(instance_down_for="1m", pool_down_for="1m", kv_cache_usage_above=0.9,
                        kv_cache_for="5m", requests_waiting_above=10, requests_waiting_for="2m")


def duration_seconds(text: str) -> float | None:
    """Seconds of a Prometheus duration ("1m30s"), None when it is not one (or is zero)."""
    match = DURATION.match(text)
    if not text or match is None:
        return None
    seconds = sum(int(part) * unit for part, unit in zip(match.groups(), UNIT_SECONDS, strict=True)
                  if part)
    return seconds or None


def _duration(reader: Reader, key: str, default: str) -> str:
    value = reader.string(key, default=default)
    if value and duration_seconds(value) is None:
        reader.fail(f"{key} must be a positive Prometheus duration such as 30s, 5m or 15d, "
                    f"got {value!r}")
    return value


def read_monitoring(problems: list[str], data: object, addresses: Mapping[str, str],
                    gateway_host: str) -> MonitoringInput:
    """`memoryx_monitoring`; absent or null: off. The Prometheus host must be an inventory host
    with an address (default: the gateway host)."""
    if data is None:
        return MonitoringInput()
    reader = Reader(problems, "monitoring", data, MONITORING_KEYS)
    defaults = MonitoringInput()
    settings = MonitoringInput(
        enabled=reader.boolean("enabled", False),
        host=reader.string("host", default=gateway_host),
        listen_address=reader.string("listen_address", default=""),
        port=reader.integer("port", 1, 65535, default=defaults.port),
        scrape_interval=_duration(reader, "scrape_interval", defaults.scrape_interval),
        evaluation_interval=_duration(reader, "evaluation_interval", defaults.evaluation_interval),
        retention=_duration(reader, "retention", defaults.retention),
        node_exporter_port=reader.integer("node_exporter_port", 1, 65535,
                                          default=defaults.node_exporter_port),
        mtail_port=reader.integer("mtail_port", 1, 65535, default=defaults.mtail_port),
        alerts=_alerts(problems, reader.raw("alerts", {})),
    )
    if settings.host == gateway_host:
        pass  # the gateway's own checks name a gateway host outside the inventory
    elif settings.host and settings.host not in addresses:
        reader.fail(f"host {settings.host!r} is not in the inventory "
                    f"(hosts: {', '.join(sorted(addresses))}); Prometheus runs on an inventory host")
    elif settings.host and settings.enabled and not addresses[settings.host]:
        reader.fail(f"host {settings.host!r} has no address (ansible_host) in the inventory")
    listen = settings.listen_address
    if listen and listen not in (ANY_ADDRESS, LOOPBACK) and not IPV4.match(listen):
        reader.fail(f"listen_address must be an IPv4 address (or {ANY_ADDRESS}), got {listen!r}")
    return settings


def _alerts(problems: list[str], data: object) -> Alerts:
    reader = Reader(problems, "monitoring alerts", data, ALERT_KEYS)
    d = DEFAULT_ALERTS
    return Alerts(
        instance_down_for=_duration(reader, "instance_down_for", d["instance_down_for"]),
        pool_down_for=_duration(reader, "pool_down_for", d["pool_down_for"]),
        kv_cache_usage_above=reader.number("kv_cache_usage_above", above=0, high=1,
                                           default=d["kv_cache_usage_above"]),
        kv_cache_for=_duration(reader, "kv_cache_for", d["kv_cache_for"]),
        requests_waiting_above=reader.integer("requests_waiting_above", low=0,
                                              default=d["requests_waiting_above"]),
        requests_waiting_for=_duration(reader, "requests_waiting_for", d["requests_waiting_for"]),
    )


