"""Rolling restart support: a drain or an undrain is the state file the router reads at every
request, with no reload (no nginx process changes); drained members get nothing from the next
request on; an all-drained pool answers 503 with Retry-After; undrained members serve again."""

from __future__ import annotations

import harness as h
from harness import Stack


def _spread(stack: Stack, port: int, count: int) -> tuple[float, float]:
    sims = [stack.sims["llama-a"], stack.sims["llama-b"]]
    before = [h.success_total(s.port) for s in sims]
    for _ in range(count):
        reply = h.request(port, "POST", "/v1/chat/completions", h.chat("llama3.1-8b", max_tokens=1))
        assert reply.status == 200, reply.body
    after = [h.success_total(s.port) for s in sims]
    return after[0] - before[0], after[1] - before[1]


def test_drain_and_undrain_without_reload(stack: Stack) -> None:
    gateway, port, variant = stack.gateways["drain"], stack.port("drain"), stack.variants["drain"]
    assert gateway.router is not None
    processes = set(gateway.nginx_pids())
    first_a, first_b = _spread(stack, port, 8)
    assert first_a > 0
    assert first_b > 0

    try:
        h.drain(variant, ["llama-b"])
        assert _spread(stack, port, 10) == (10.0, 0.0)
        ready = h.request(port, "GET", "/ready").json()
        assert ready["pools"]["llama"] == {"ready": True, "live": 1, "members": 2, "drained": 1}
        # the fixed route of the same pool follows the drain too
        before_b = h.success_total(stack.sims["llama-b"].port)
        for _ in range(4):
            reply = h.request(port, "POST", "/llama/v1/chat/completions", h.chat("llama3.1-8b", max_tokens=1))
            assert reply.status == 200, reply.body
        assert h.success_total(stack.sims["llama-b"].port) == before_b

        h.drain(variant, ["qwen-a"])
        qwen_before = stack.qwen_total()
        for path, body in (("/v1/chat/completions", h.chat("qwen2.5-14b")),
                           ("/qwen/v1/chat/completions", h.chat("qwen2.5-14b"))):
            reply = h.request(port, "POST", path, body)
            assert reply.status == 503, path
            assert reply.headers["retry-after"] == "7"
            error = reply.json()["error"]
            assert error["code"] == "pool_restarting"
            assert "qwen pool is restarting" in error["message"]
        assert stack.qwen_total() == qwen_before
        back_a, back_b = _spread(stack, port, 8)
        assert back_a > 0
        assert back_b > 0
        ready_reply = h.request(port, "GET", "/ready")
        assert ready_reply.status == 503
        qwen = ready_reply.json()["pools"]["qwen"]
        assert qwen == {"ready": False, "live": 0, "members": 1, "drained": 1}
    finally:
        h.drain(variant, [])
    reply = h.request(port, "POST", "/qwen/v1/chat/completions", h.chat("qwen2.5-14b"))
    assert reply.status == 200, reply.body
    assert h.request(port, "GET", "/ready").status == 200
    # no reload happened: the same masters and workers, on both sides
    assert set(gateway.nginx_pids()) == processes


def test_drained_file_written_by_the_role(stack: Stack) -> None:
    """render.yml ran the role's drain.yml: the file the router reads, nothing drained."""
    variant = stack.variants["base"]
    assert (variant.runtime / "drained.json").read_text() == '{"drained": []}\n'
