"""The vLLM simulator's KV-cache gauge: vLLM 0.19.1's vllm:kv_cache_usage_perc (0..1, labels
model_name and engine), from the running requests' blocks over the KV budget."""

from __future__ import annotations

import json
import time

from test_vllm_sim import SERVED, Lab, Sim, chat_body, lab, metric, open_stream, read_events

__all__ = ["lab"]  # the fixture, shared with test_vllm_sim.py
KV = "vllm:kv_cache_usage_perc"


def kv_usage(sim: Sim) -> float:
    return metric(sim.request("GET", "/metrics")[1].decode(), KV)


def usage_while_streaming(sim: Sim) -> tuple[float, int]:
    """The gauge while one streamed chat runs, and the request's prompt + answer tokens."""
    with open_stream(sim, "/v1/chat/completions", chat_body(stream=True, max_tokens=20,
                                                            stream_options={"include_usage": True})) as resp:
        events = read_events(resp)
        next(events)  # the first chunk: the request is running
        during = kv_usage(sim)
        usage = [json.loads(data)["usage"] for _, data in events
                 if data != "[DONE]" and json.loads(data).get("usage")]
    return during, usage[0]["total_tokens"]


def test_idle_engine_reports_an_empty_kv_cache_under_vllms_name_and_labels(lab: Lab) -> None:
    sim = lab.start()
    sim.wait_healthy()
    text = sim.request("GET", "/metrics")[1].decode()
    assert f"# TYPE {KV} gauge" in text
    assert f'{KV}{{model_name="{SERVED}",engine="0"}} 0.0' in text
    assert "vllm:gpu_cache_usage_perc" not in text  # removed from vLLM's V1 engine


def test_running_request_holds_its_blocks_of_the_override_budget(lab: Lab) -> None:
    # 4 blocks of 64 tokens: a request of at most 64 tokens holds one block, a quarter
    sim = lab.start("--num-gpu-blocks-override", "4", env={"VLLM_SIM_TPOT_MS": "50"})
    sim.wait_healthy()
    during, tokens = usage_while_streaming(sim)
    assert tokens <= 64
    assert during == 0.25
    deadline = time.monotonic() + 5
    while kv_usage(sim) != 0.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kv_usage(sim) == 0.0  # the finished request released its blocks


def test_default_budget_is_max_num_seqs_full_length_sequences(lab: Lab) -> None:
    # 2 sequences x 8192 tokens / 64 per block = 256 blocks; one short request holds 1
    sim = lab.start("--max-num-seqs", "2", env={"VLLM_SIM_TPOT_MS": "50"})
    sim.wait_healthy()
    during, _ = usage_while_streaming(sim)
    assert during == 1 / 256


def test_usage_never_exceeds_one(lab: Lab) -> None:
    sim = lab.start("--num-gpu-blocks-override", "1", "--block-size", "16",
                    env={"VLLM_SIM_TPOT_MS": "50"})
    sim.wait_healthy()
    during, tokens = usage_while_streaming(sim)
    assert tokens > 16  # needs more blocks than the budget holds
    assert during == 1.0
