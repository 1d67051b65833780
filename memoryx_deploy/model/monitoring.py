"""Monitoring in the model: the Prometheus server, its scrape targets and each host's exporters, built from
the validated `memoryx_monitoring` and the stack, and the checks across them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from memoryx_deploy.inputs.containers import LOOPBACK
from memoryx_deploy.inputs.monitoring import (
    ANY_ADDRESS,
    DEFAULT_ALERTS,
    METRICS_SOCKET_DIR,
    SCRAPE_TIMEOUT_SECONDS,
    MonitoringInput,
    duration_seconds,
)
from memoryx_deploy.schema.stack import Exporters, Monitoring, Target

if TYPE_CHECKING:  # model.py imports this module's Monitoring
    from memoryx_deploy.schema.stack import Host, Stack, VllmInstance


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
