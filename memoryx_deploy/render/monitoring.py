"""Prometheus's files from the stack's monitoring: alert rules and scrape configs (roles/prometheus_server)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # model.py imports this module's Monitoring
    pass


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
