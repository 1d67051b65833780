"""Metrics and alerts (issue 12): `memoryx_monitoring` -> the Prometheus server, its scrape
targets, the exporters on each host and the alert rules, all from the stack.

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
from typing import TYPE_CHECKING, Any, TypedDict

from memoryx_deploy.containers import LOOPBACK
from memoryx_deploy.fields import Reader

if TYPE_CHECKING:  # model.py imports this module's Monitoring
    from memoryx_deploy.model import Host, Stack, VllmInstance

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


class Alerts(TypedDict):
    instance_down_for: str
    pool_down_for: str
    kv_cache_usage_above: float
    kv_cache_for: str
    requests_waiting_above: int
    requests_waiting_for: str


class Target(TypedDict):
    address: str  # host:port, as Prometheus connects
    labels: dict[str, str]


class Exporters(TypedDict):
    """What one host runs for Prometheus, and the ports only the Prometheus host may reach."""

    address: str  # where its exporters listen: the host's address
    node_exporter: bool
    mtail: bool
    firewall_ports: list[int]


class Monitoring(TypedDict):
    enabled: bool
    host: str  # the Prometheus host (an inventory host)
    address: str  # its address: the source the exporters and vLLM ports admit
    listen_address: str
    port: int
    url: str  # Prometheus's HTTP API
    scrape_interval: str
    scrape_interval_seconds: float
    scrape_timeout: str
    evaluation_interval: str
    retention: str
    node_exporter_port: int
    mtail_port: int
    alerts: Alerts
    jobs: dict[str, list[Target]]  # job name -> targets
    exporters: dict[str, Exporters]  # host -> its exporters (hosts running none are absent)
    metrics_socket_dir: str  # mtail's socket on the gateway host ("" when off)
    backend_sources: list[str]  # admitted to the backend ports: the gateway host, the Prometheus host


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


def build_monitoring(settings: MonitoringInput, hosts: Mapping[str, Host],
                     vllm: list[VllmInstance], gateway_host: str,
                     addresses: Mapping[str, str]) -> Monitoring:
    """The monitoring view of the stack: targets, exporters, firewall sources."""
    gateway_address = addresses.get(gateway_host, "")
    on = settings.enabled
    address = addresses.get(settings.host, "") if on else ""
    listen = settings.listen_address or address
    interval = duration_seconds(settings.scrape_interval) or 15.0
    timeout = min(interval, SCRAPE_TIMEOUT_SECONDS)
    exporters: dict[str, Exporters] = {}
    jobs: dict[str, list[Target]] = {}
    if on:
        for name in [*hosts, gateway_host]:
            view = exporters.setdefault(name, Exporters(
                address=addresses.get(name, ""), node_exporter=False, mtail=False,
                firewall_ports=[]))
            if name in hosts and not view["node_exporter"]:
                view["node_exporter"] = True
                view["firewall_ports"].append(settings.node_exporter_port)
            if name == gateway_host and not view["mtail"]:
                view["mtail"] = True
                view["firewall_ports"].append(settings.mtail_port)
        jobs = {
            "vllm": [_vllm_target(i, settings.host) for i in vllm],
            "gateway": [Target(address=f"{gateway_address}:{settings.mtail_port}",
                               labels={"instance": gateway_host, "host": gateway_host})],
            "node": [Target(address=f"{addresses.get(h, '')}:{settings.node_exporter_port}",
                            labels={"instance": h, "host": h}) for h in hosts],
            "prometheus": [Target(address=f"{LOOPBACK if listen == ANY_ADDRESS else listen}:"
                                          f"{settings.port}",
                                  labels={"instance": settings.host, "host": settings.host})],
        }
    return Monitoring(
        enabled=on, host=settings.host if on else "", address=address, listen_address=listen,
        port=settings.port, url=f"http://{listen}:{settings.port}" if on else "",
        scrape_interval=settings.scrape_interval, scrape_interval_seconds=interval,
        scrape_timeout=_seconds_text(timeout), evaluation_interval=settings.evaluation_interval,
        retention=settings.retention, node_exporter_port=settings.node_exporter_port,
        mtail_port=settings.mtail_port, alerts=settings.alerts or DEFAULT_ALERTS, jobs=jobs,
        exporters=exporters, metrics_socket_dir=METRICS_SOCKET_DIR if on else "",
        backend_sources=list(dict.fromkeys(a for a in (gateway_address, address) if a)),
    )


def _seconds_text(seconds: float) -> str:
    return f"{seconds:g}s" if seconds >= 1 else f"{round(seconds * 1000)}ms"


def _vllm_target(instance: VllmInstance, prometheus_host: str) -> Target:
    """An instance on the Prometheus host is scraped over loopback (always published there)."""
    address = LOOPBACK if instance["host"] == prometheus_host else instance["bind_address"]
    return Target(address=f"{address}:{instance['port']}", labels={
        "instance": instance["name"], "host": instance["host"], "pool": instance["pool"],
        "gpu": str(instance["gpu"]), "model": instance["served_model_name"],
        "container": instance["container_name"]})


def monitoring_problems(stack: Stack) -> list[str]:
    """Ports of the monitoring services that clash with the stack's on one host, and vLLM
    instances Prometheus could not reach (bound to loopback on another host)."""
    monitoring, vllm, gateway = stack["monitoring"], stack["vllm_instances"], stack["gateway"]
    if not monitoring["enabled"]:
        return []
    taken = {(i["host"], i["port"]): f"{kind} instance {i['name']!r}"
             for kind, instances in (("vllm", vllm), ("ollama", stack["ollama_instances"]))
             for i in instances}
    taken[gateway["host"], gateway["port"]] = "the gateway"
    if gateway["tls"]["plain_http_port"]:
        taken[gateway["host"], gateway["tls"]["plain_http_port"]] = "the gateway's plain HTTP port"
    problems = []
    services = [(monitoring["host"], monitoring["port"], "port", "Prometheus")]
    for host, view in monitoring["exporters"].items():
        if view["node_exporter"]:
            services.append((host, monitoring["node_exporter_port"], "node_exporter_port",
                             "the node exporter"))
        if view["mtail"]:
            services.append((host, monitoring["mtail_port"], "mtail_port", "mtail"))
    users: dict[tuple[str, int], str] = dict(taken)
    for host, port, field, who in services:
        if (host, port) in users:
            problems.append(f"monitoring {field}: {host}: port {port} of {who} is already used "
                            f"by {users[host, port]}")
        else:
            users[host, port] = who
    problems += [f"monitoring: vllm instance {i['name']!r} on {i['host']} listens on "
                 f"{LOOPBACK} only (it runs on the gateway host), so Prometheus on "
                 f"{monitoring['host']} cannot scrape it; set monitoring.host to {i['host']}"
                 for i in vllm
                 if i["bind_address"] == LOOPBACK and i["host"] != monitoring["host"]]
    return problems


def alert_rules(monitoring: Mapping[str, Any]) -> dict[str, Any]:
    """The alert rules file (Prometheus rule groups) for the thresholds of the data. A pool is
    a vLLM pool (job vllm); Ollama serves no /metrics, so its pools are not watched here."""
    a = monitoring["alerts"]
    # Only the stack's targets carry `host` (and a vLLM one `pool`): a scrape the stack did not
    # define (an operator's own job, or the samples of Debian's default configuration left in the
    # database by a first start) never raises them.
    rules: list[dict[str, Any]] = [
        {"alert": "MemoryxInstanceDown",
         "expr": 'up{job=~"vllm|gateway|node",host!=""} == 0',
         "for": a["instance_down_for"],
         "labels": {"severity": "critical"},
         "annotations": {
             "summary": "{{ $labels.job }} target {{ $labels.instance }} on {{ $labels.host }} is down",
             "description": "Prometheus could not scrape {{ $labels.instance }} "
                            "({{ $labels.job }}) for " + a["instance_down_for"] + "."}},
        {"alert": "MemoryxPoolWithoutLiveMember",
         "expr": 'sum by (pool) (up{job="vllm",pool!=""}) == 0',
         "for": a["pool_down_for"],
         "labels": {"severity": "critical"},
         "annotations": {
             "summary": "pool {{ $labels.pool }} has no live member",
             "description": "Every vLLM instance of pool {{ $labels.pool }} is down: the gateway "
                            "answers its models with errors."}},
        {"alert": "MemoryxKvCacheHigh",
         "expr": f"max by (instance, host, pool, model) (vllm:kv_cache_usage_perc) "
                 f"> {a['kv_cache_usage_above']:g}",
         "for": a["kv_cache_for"],
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "KV cache of {{ $labels.instance }} above "
                        f"{a['kv_cache_usage_above'] * 100:g}%",
             "description": "{{ $labels.instance }} ({{ $labels.model }}) uses "
                            "{{ $value | humanizePercentage }} of its KV cache: requests queue "
                            "or get preempted."}},
        {"alert": "MemoryxRequestsWaiting",
         "expr": f"max by (instance, host, pool, model) (vllm:num_requests_waiting) "
                 f"> {a['requests_waiting_above']}",
         "for": a["requests_waiting_for"],
         "labels": {"severity": "warning"},
         "annotations": {
             "summary": "{{ $value }} requests waiting on {{ $labels.instance }}",
             "description": "More than " + str(a["requests_waiting_above"]) + " requests wait "
                            "for a slot on {{ $labels.instance }} ({{ $labels.model }})."}},
    ]
    return {"groups": [{"name": "memoryx", "rules": rules}]}


def scrape_configs(monitoring: Mapping[str, Any]) -> list[dict[str, Any]]:
    """prometheus.yml's scrape_configs: one static config per target (each its own labels)."""
    return [{"job_name": job,
             "static_configs": [{"targets": [t["address"]], "labels": t["labels"]}
                                for t in targets]}
            for job, targets in monitoring["jobs"].items() if targets]
