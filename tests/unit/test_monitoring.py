"""memoryx_deploy/inputs/monitoring.py: memoryx_monitoring -> targets, exporters, firewall sources, and
the preflight's problems naming the field."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.monitoring import duration_seconds
from memoryx_deploy.model.monitoring import monitoring_problems
from memoryx_deploy.render.monitoring import alert_rules, scrape_configs
from memoryx_deploy.schema.stack import StackError

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65", "localhost": ""}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def problems(config: dict[str, Any]) -> list[str]:
    with pytest.raises(StackError) as caught:
        build_stack(config, ADDRESSES)
    return caught.value.problems


def test_production_runs_prometheus_on_the_gateway_host(config: dict[str, Any]) -> None:
    monitoring = build_stack(config, ADDRESSES)["monitoring"]
    assert monitoring["enabled"] is True
    assert (monitoring["host"], monitoring["address"], monitoring["url"]) == (
        "mx-embed-01", "192.168.31.65", "http://192.168.31.65:9090")
    assert monitoring["backend_sources"] == ["192.168.31.65"]  # the gateway host is Prometheus's
    assert monitoring["exporters"] == {
        "mx-llm-01": {"address": "192.168.31.10", "node_exporter": True, "mtail": False,
                      "firewall_ports": [9100]},
        "mx-embed-01": {"address": "192.168.31.65", "node_exporter": True, "mtail": True,
                        "firewall_ports": [9100, 3903]}}
    assert monitoring["metrics_socket_dir"] == "/var/lib/memoryx/mtail"


def test_every_vllm_instance_is_a_target_with_its_labels(config: dict[str, Any]) -> None:
    stack = build_stack(config, ADDRESSES)
    targets = stack["monitoring"]["jobs"]["vllm"]
    assert [t["labels"]["instance"] for t in targets] == [i["name"] for i in stack["vllm_instances"]]
    assert targets[4] == {"address": "192.168.31.10:11405", "labels": {
        "instance": "qwen-gpu2", "host": "mx-llm-01", "pool": "qwen", "gpu": "2",
        "model": "qwen2.5-14b", "container": "vllm_qwen_gpu2"}}
    jobs = stack["monitoring"]["jobs"]
    assert jobs["gateway"] == [{"address": "192.168.31.65:3903",
                                "labels": {"instance": "mx-embed-01", "host": "mx-embed-01"}}]
    assert [t["address"] for t in jobs["node"]] == ["192.168.31.10:9100", "192.168.31.65:9100"]


def test_a_separate_prometheus_host_is_admitted_to_the_backend_ports(config: dict[str, Any]) -> None:
    config["monitoring"]["host"] = "mx-llm-01"
    monitoring = build_stack(config, ADDRESSES)["monitoring"]
    assert monitoring["backend_sources"] == ["192.168.31.65", "192.168.31.10"]
    # an instance on the Prometheus host itself is scraped over loopback
    assert monitoring["jobs"]["vllm"][0]["address"] == "127.0.0.1:11401"


def test_moving_the_gateway_moves_prometheus_by_default(config: dict[str, Any]) -> None:
    config["gateway"]["host"] = "mx-llm-01"
    monitoring = build_stack(config, ADDRESSES)["monitoring"]
    assert (monitoring["host"], monitoring["backend_sources"]) == ("mx-llm-01", ["192.168.31.10"])
    assert monitoring["exporters"]["mx-llm-01"]["mtail"] is True
    # its instances now bind to loopback only, and Prometheus beside them scrapes them there
    assert {t["address"].split(":")[0] for t in monitoring["jobs"]["vllm"]} == {"127.0.0.1"}


def test_disabled_monitoring_deploys_nothing_and_admits_the_gateway_alone(config: dict[str, Any]) -> None:
    config["monitoring"] = {"enabled": False}
    monitoring = build_stack(config, ADDRESSES)["monitoring"]
    assert (monitoring["jobs"], monitoring["exporters"], monitoring["metrics_socket_dir"]) == ({}, {}, "")
    assert monitoring["backend_sources"] == ["192.168.31.65"]
    absent = copy.deepcopy(config)
    absent.pop("monitoring")
    assert build_stack(absent, ADDRESSES)["monitoring"]["enabled"] is False


def test_prometheus_host_outside_the_inventory_is_refused_by_name(config: dict[str, Any]) -> None:
    config["monitoring"]["host"] = "mx-mon-01"
    assert problems(config) == [
        "monitoring: host 'mx-mon-01' is not in the inventory (hosts: localhost, mx-embed-01, "
        "mx-llm-01); Prometheus runs on an inventory host"]


def test_prometheus_host_without_an_address_is_refused(config: dict[str, Any]) -> None:
    config["monitoring"]["host"] = "localhost"
    assert problems(config) == [
        "monitoring: host 'localhost' has no address (ansible_host) in the inventory"]


def test_bad_fields_are_named(config: dict[str, Any]) -> None:
    config["monitoring"].update(scrape_interval="15 seconds", port=70000, listen_address="any",
                                retension="15d")
    config["monitoring"]["alerts"].update(kv_cache_usage_above=90, requests_waiting_for="0s")
    assert sorted(problems(config)) == sorted([
        "monitoring: unknown key 'retension' (allowed: alerts, enabled, evaluation_interval, host, "
        "listen_address, mtail_port, node_exporter_port, port, retention, scrape_interval)",
        "monitoring: scrape_interval must be a positive Prometheus duration such as 30s, 5m or "
        "15d, got '15 seconds'",
        "monitoring: port must be between 1 and 65535, got 70000",
        "monitoring: listen_address must be an IPv4 address (or 0.0.0.0), got 'any'",
        "monitoring alerts: kv_cache_usage_above must be at most 1, got 90",
        "monitoring alerts: requests_waiting_for must be a positive Prometheus duration such as "
        "30s, 5m or 15d, got '0s'"])


def test_an_exporter_port_taken_by_an_instance_is_refused(config: dict[str, Any]) -> None:
    config["monitoring"]["node_exporter_port"] = 11401
    assert problems(config) == [
        "monitoring node_exporter_port: mx-llm-01: port 11401 of the node exporter is already "
        "used by vllm instance 'llama-gpu0-0'"]


def test_an_instance_prometheus_cannot_reach_is_refused(config: dict[str, Any]) -> None:
    # a vLLM instance on the gateway host binds to loopback: Prometheus elsewhere cannot scrape it
    config["monitoring"]["host"] = "mx-llm-01"
    stack = build_stack(config, ADDRESSES)
    moved = stack["vllm_instances"][4]
    moved["host"], moved["bind_address"] = "mx-embed-01", "127.0.0.1"
    assert monitoring_problems(stack) == [
        "monitoring: vllm instance 'qwen-gpu2' on mx-embed-01 listens on 127.0.0.1 only (it runs "
        "on the gateway host), so Prometheus on mx-llm-01 cannot scrape it; set monitoring.host "
        "to mx-embed-01"]


@pytest.mark.parametrize(("text", "seconds"), [("15s", 15), ("1m30s", 90), ("15d", 15 * 86400),
                                               ("500ms", 0.5), ("0s", None), ("", None),
                                               ("1h1d", None), ("5", None)])
def test_prometheus_durations(text: str, seconds: float | None) -> None:
    assert duration_seconds(text) == seconds


def test_short_interval_bounds_the_scrape_timeout(config: dict[str, Any]) -> None:
    config["monitoring"]["scrape_interval"] = "2s"
    assert build_stack(config, ADDRESSES)["monitoring"]["scrape_timeout"] == "2s"


def test_scrape_configs_give_each_target_its_labels(config: dict[str, Any]) -> None:
    configs = scrape_configs(build_stack(config, ADDRESSES)["monitoring"])
    assert [c["job_name"] for c in configs] == ["vllm", "gateway", "node", "prometheus"]
    assert configs[0]["static_configs"][0] == {"targets": ["192.168.31.10:11401"], "labels": {
        "instance": "llama-gpu0-0", "host": "mx-llm-01", "pool": "llama", "gpu": "0",
        "model": "llama3.1-8b", "container": "vllm_llama_gpu0_0"}}


def test_alert_thresholds_come_from_the_data(config: dict[str, Any]) -> None:
    config["monitoring"]["alerts"].update(requests_waiting_above=3, kv_cache_usage_above=0.8,
                                          instance_down_for="30s")
    rules = alert_rules(build_stack(config, ADDRESSES)["monitoring"])["groups"][0]["rules"]
    by_name = {rule["alert"]: rule for rule in rules}
    assert sorted(by_name) == ["MemoryxInstanceDown", "MemoryxKvCacheHigh",
                               "MemoryxPoolWithoutLiveMember", "MemoryxRequestsWaiting"]
    assert by_name["MemoryxInstanceDown"]["for"] == "30s"
    assert by_name["MemoryxKvCacheHigh"]["expr"].endswith("> 0.8")
    assert by_name["MemoryxRequestsWaiting"]["expr"].endswith("> 3")


def test_the_filter_shim_exposes_the_monitoring_filters(config: dict[str, Any]) -> None:
    spec = importlib.util.spec_from_file_location(
        "memoryx_monitoring_shim", ROOT / "plugins" / "filter" / "memoryx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    filters = module.FilterModule().filters()
    monitoring = build_stack(config, ADDRESSES)["monitoring"]
    assert filters["memoryx_scrape_configs"](monitoring) == scrape_configs(monitoring)
    assert filters["memoryx_alert_rules"](monitoring) == alert_rules(monitoring)
