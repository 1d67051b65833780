"""Metrics and alerts in the lab (issue 12): Prometheus on the gateway host scrapes every vLLM
instance, the gateway (mtail) and the node exporters, all from the stack; a request through the
gateway shows in its metrics; a stopped instance fires its alert, then is started again."""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml
from labkit import EMBED_HOST, GATEWAY_URL, LAB_CA, LLM_HOST, PROBE, on_host
from openai import OpenAI

from memoryx_deploy import build_stack
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.inventory import inventory_addresses
from memoryx_deploy.schema.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture(scope="module")
def stack() -> Stack:
    """The lab's stack: production's layout with the lab's monitoring settings."""
    config = load_config([ROOT / "group_vars/all/memoryx.yml"])
    lab = yaml.safe_load((ROOT / "inventory/lab/group_vars/lab/main.yml").read_text())
    config["monitoring"] = lab["memoryx_monitoring"]
    return build_stack(config, inventory_addresses(ROOT / "inventory/lab"))


def api(stack: Stack, path: str, **query: str) -> Any:
    url = f"{stack['monitoring']['url']}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = json.load(reply)
    assert body["status"] == "success", body
    return body["data"]


def poll(what: str, probe: Callable[[], T | None], seconds: float) -> T:
    """`probe()`'s first true answer within `seconds`, else a failure naming `what`."""
    deadline = time.monotonic() + seconds
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {seconds:.0f} s (last: {last!r})")


def targets(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    """(job, instance label) -> the active target."""
    return {(t["labels"]["job"], t["labels"]["instance"]): t
            for t in api(stack, "/api/v1/targets", state="active")["activeTargets"]}


def value(stack: Stack, query: str) -> float:
    result = api(stack, "/api/v1/query", query=query)["result"]
    return sum(float(r["value"][1]) for r in result)


def test_every_vllm_instance_and_the_gateway_are_up(deployed: None, stack: Stack) -> None:
    wanted = {("vllm", i["name"]) for i in stack["vllm_instances"]}
    wanted |= {("gateway", stack["gateway"]["host"])}
    wanted |= {("node", host) for host in stack["hosts"]}

    def all_up() -> dict[tuple[str, str], dict[str, Any]] | None:
        found = targets(stack)
        return found if all(found.get(key, {}).get("health") == "up" for key in wanted) else None

    found = poll("every vLLM, gateway and node target up", all_up, 60)
    assert {key for key in found if key[0] in ("vllm", "gateway", "node")} == wanted
    addresses = {t["labels"]["instance"]: t["address"] for t in stack["monitoring"]["jobs"]["vllm"]}
    for instance in stack["vllm_instances"]:
        labels = found["vllm", instance["name"]]["labels"]
        assert (labels["pool"], labels["model"], labels["gpu"], labels["host"]) == (
            instance["pool"], instance["served_model_name"], str(instance["gpu"]), instance["host"])
        assert addresses[instance["name"]].endswith(f":{instance['port']}")
        assert found["vllm", instance["name"]]["scrapeUrl"] == (
            f"http://{addresses[instance['name']]}/metrics")


def every(stack: Stack, query: str, count: int) -> Callable[[], list[dict[str, Any]] | None]:
    """A probe: the query's series once there are `count` of them."""
    def probe() -> list[dict[str, Any]] | None:
        result: list[dict[str, Any]] = api(stack, "/api/v1/query", query=query)["result"]
        return result if len(result) == count else None
    return probe


def test_kv_cache_usage_of_every_instance_arrives(deployed: None, stack: Stack) -> None:
    """vLLM 0.19.1's gauge, which alert MemoryxKvCacheHigh watches (the simulator serves it)."""
    instances = stack["vllm_instances"]
    kv = poll("vllm:kv_cache_usage_perc of every instance",
              every(stack, "vllm:kv_cache_usage_perc", len(instances)), 30)
    assert {r["metric"]["instance"] for r in kv} == {i["name"] for i in instances}
    assert all(0 <= float(r["value"][1]) <= 1 for r in kv)


def test_gpu_memory_of_every_gpu_arrives(deployed: None, stack: Stack) -> None:
    gpus = sum(len(host["gpus"]) for host in stack["hosts"].values())
    memory = poll("GPU memory of every GPU", every(stack, "nvidia_smi_memory_total_bytes", gpus), 30)
    by_gpu = {(r["metric"]["host"], r["metric"]["gpu"]): float(r["value"][1]) for r in memory}
    for name, host in stack["hosts"].items():
        for gpu in host["gpus"]:
            assert by_gpu[name, str(gpu["index"])] == gpu["memory_gib"] * 1024**3
    # the simulators' reservations show as used memory on the V100s (the stand-in's ledger)
    assert value(stack, 'nvidia_smi_memory_used_bytes{host="mx-llm-01"}') > 0


def test_a_request_through_the_gateway_is_counted_by_pool_and_model(
        deployed: None, stack: Stack, api_key: str) -> None:
    instance = stack["vllm_instances"][0]
    query = (f'sum(memoryx_gateway_requests_total{{pool="{instance["pool"]}",'
             f'model="{instance["served_model_name"]}",status="200"}})')
    before = value(stack, query)
    client = OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=60)
    reply = client.chat.completions.create(model=instance["served_model_name"], max_tokens=4,
                                           messages=[{"role": "user", "content": "count me"}])
    assert reply.choices[0].message.content
    poll("the request in memoryx_gateway_requests_total", lambda: value(stack, query) >= before + 1, 30)
    upstream = (f'sum(memoryx_gateway_upstream_seconds_count{{pool="{instance["pool"]}",'
                f'model="{instance["served_model_name"]}"}})')
    assert value(stack, upstream) >= 1


def test_usage_is_counted_per_key_in_requests_and_tokens(
        deployed: None, stack: Stack, api_key: str) -> None:
    """Usage per key (issue 21): the lab key's requests by model and status, and the engine's
    prompt and completion tokens from its answers' usage, in Prometheus."""
    model = stack["vllm_instances"][0]["served_model_name"]
    key = 'key="memoryx-lab"'
    queries = {"requests": f'sum(memoryx_gateway_key_requests_total{{{key},model="{model}",status="200"}})',
               "prompt": f'sum(memoryx_gateway_prompt_tokens_total{{{key},model="{model}"}})',
               "completion": f'sum(memoryx_gateway_completion_tokens_total{{{key},model="{model}"}})'}
    before = {name: value(stack, query) for name, query in queries.items()}
    client = OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=60)
    reply = client.chat.completions.create(model=model, max_tokens=4,
                                           messages=[{"role": "user", "content": "count my tokens"}])
    assert reply.usage is not None
    want = {"requests": 1, "prompt": reply.usage.prompt_tokens, "completion": reply.usage.completion_tokens}
    poll("the key's request and tokens in Prometheus",
         lambda: all(value(stack, queries[n]) >= before[n] + want[n] for n in queries), 30)


def mtail_requests(stack: Stack, **labels: str) -> float:
    """memoryx_gateway_requests_total with these labels, read from mtail on the gateway host."""
    exporter = stack["monitoring"]["exporters"][stack["gateway"]["host"]]
    url = f"http://{exporter['address']}:{stack['monitoring']['mtail_port']}/metrics"
    text = on_host(EMBED_HOST, f"curl -sS --max-time 5 {url}").stdout
    total = 0.0
    for match in re.finditer(r"^memoryx_gateway_requests_total\{(.*)\} (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', match[1]))
        if labels.items() <= have.items():
            total += float(match[2])
    return total


def test_a_burst_through_the_gateway_is_counted_to_the_request(
        deployed: None, stack: Stack, api_key: str) -> None:
    """Every request of a burst from 8 keep-alive clients is counted: none of the router's
    metrics datagrams is refused (Debian's mtail alone reads one per poll: 17 of 2,000 counted)."""
    clients, each = 8, 250
    labels = {"pool": "-", "model": "-", "status": "200"}  # GET /v1/models: the gateway answers
    router = "memoryx_gateway_router"
    since = on_host(EMBED_HOST, "date -u +%Y-%m-%dT%H:%M:%S.%NZ").stdout.strip()
    before = mtail_requests(stack, **labels)
    tls = ssl.create_default_context(cafile=LAB_CA)

    def client(_index: int) -> int:
        with httpx.Client(base_url=GATEWAY_URL, verify=tls, timeout=30,
                          headers={"Authorization": f"Bearer {api_key}"}) as http:
            return sum(http.get("/v1/models").status_code == 200 for _ in range(each))

    with ThreadPoolExecutor(clients) as pool:
        assert sum(pool.map(client, range(clients))) == clients * each
    poll("the burst counted by mtail",
         lambda: mtail_requests(stack, **labels) >= before + clients * each, 30)
    assert mtail_requests(stack, **labels) == before + clients * each
    refused = on_host(EMBED_HOST, f"docker logs --since {since} {router} 2>&1 >/dev/null"
                                  " | grep -c 'to syslog failed'", check=False).stdout.strip()
    assert refused == "0", f"{refused} metrics lines refused by the socket"


def test_exporters_admit_only_the_prometheus_host(deployed: None, stack: Stack) -> None:
    for host, view in stack["monitoring"]["exporters"].items():
        for port in view["firewall_ports"]:
            url = f"http://{view['address']}:{port}/metrics"
            probe = on_host(PROBE, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {url}",
                            check=False)
            assert probe.stdout in ("000", ""), f"a LAN client reached {host}'s exporter {url}"
            local = on_host(EMBED_HOST, f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 5 {url}")
            assert local.stdout == "200", url  # the Prometheus host


def health(container: str) -> str:
    return on_host(LLM_HOST, f"docker inspect -f '{{{{.State.Health.Status}}}}' {container}",
                   check=False).stdout.strip()


def test_a_stopped_instance_fires_its_alert(deployed: None, stack: Stack) -> None:
    # a member of a pool with others, so only its own alert fires
    pools = stack["pools"]
    instance = next(i for i in reversed(stack["vllm_instances"])
                    if len(pools[i["pool"]]["members"]) > 1 and i["host"] == "mx-llm-01")
    name, container = instance["name"], instance["container_name"]

    def firing() -> list[dict[str, Any]]:
        return [a for a in api(stack, "/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == "MemoryxInstanceDown"
                and a["labels"].get("instance") == name and a["state"] == "firing"]

    assert firing() == []
    on_host(LLM_HOST, f"docker stop {container}")
    try:
        alert = poll(f"MemoryxInstanceDown firing for {name}", firing, 90)[0]
        assert alert["labels"]["pool"] == instance["pool"]
        assert alert["labels"]["severity"] == "critical"
        assert not [a for a in api(stack, "/api/v1/alerts")["alerts"]
                    if a["labels"]["alertname"] == "MemoryxPoolWithoutLiveMember"]
    finally:
        on_host(LLM_HOST, f"docker start {container}")
        poll(f"{container} healthy again", lambda: health(container) == "healthy", 180)
        poll(f"{name} scraped again", lambda: value(stack, f'up{{job="vllm",instance="{name}"}}') == 1, 60)
    poll(f"MemoryxInstanceDown for {name} resolved", lambda: not firing(), 60)
