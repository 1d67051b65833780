"""Gateway-made answers: errors in OpenAI shape, /v1/models, /health, /ready, auth."""

from __future__ import annotations

import hashlib

import harness as h
from harness import API_KEYS, Stack

SERVED = ["llama3.1-8b", "qwen2.5-14b", "bge-m3"]


def test_unknown_model_is_404_naming_served_models(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", h.chat("gpt-4"))
    assert reply.status == 404
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": {
        "message": "The model `gpt-4` does not exist. "
                   "Served models: llama3.1-8b, qwen2.5-14b, bge-m3",
        "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}


def test_prototype_names_are_not_models(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "POST", "/v1/completions", {"model": "constructor"})
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "model_not_found"


def test_malformed_json_is_400(stack: Stack) -> None:
    broken = b'{"model": "llama3.1-8b",'
    reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", broken)
    assert reply.status == 400
    error = reply.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_json")


def test_empty_body_and_non_object_are_400(stack: Stack) -> None:
    for body in (b"", b"[1, 2]", b"null"):
        reply = h.request(stack.port("base"), "POST", "/v1/completions", body)
        assert reply.status == 400, body
        assert reply.json()["error"]["type"] == "invalid_request_error"


def test_missing_model_is_400(stack: Stack) -> None:
    bodies: list[dict[str, object]] = [{"messages": []}, {"model": 7}, {"model": ""}]
    for body in bodies:
        reply = h.request(stack.port("base"), "POST", "/v1/chat/completions", body)
        assert reply.status == 400, body
        assert reply.json()["error"]["param"] == "model"


def test_unknown_path_is_404(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "GET", "/nowhere")
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "unknown_url"


def test_models_lists_the_union(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "GET", "/v1/models")
    assert reply.status == 200
    body = reply.json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == SERVED
    assert {m["object"] for m in body["data"]} == {"model"}


def test_health_is_cheap_liveness(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "GET", "/health")
    assert (reply.status, reply.body) == (200, b"OK")


def test_ready_reports_every_pool(stack: Stack) -> None:
    reply = h.request(stack.port("base"), "GET", "/ready")
    assert reply.status == 200
    assert reply.json() == {"status": "ready", "pools": {
        "llama": {"ready": True, "live": 2, "members": 2, "drained": 0},
        "qwen": {"ready": True, "live": 1, "members": 1, "drained": 0},
        "bge": {"ready": True, "live": 2, "members": 2, "drained": 0}}}


def test_ready_is_503_when_a_pool_has_no_live_member(stack: Stack) -> None:
    port = stack.port("kill")
    assert h.request(port, "GET", "/ready").status == 200
    stack.sims["kill-q"].kill()
    reply = h.request(port, "GET", "/ready")
    assert reply.status == 503
    body = reply.json()
    assert body["status"] == "not_ready"
    assert body["pools"]["qwen"] == {"ready": False, "live": 0, "members": 1, "drained": 0}
    assert body["pools"]["bge"]["ready"] is True
    assert "127.0.0.1" not in reply.body.decode()


UNAUTHORIZED = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}
KEY = API_KEYS[0]["key"]


def test_auth_rejects_missing_and_wrong_keys(stack: Stack) -> None:
    port = stack.port("auth")
    cases = [
        ("GET", "/v1/models", {}),
        ("POST", "/v1/chat/completions", {"Authorization": "Bearer wrong"}),
        ("POST", "/qwen/v1/chat/completions", {"Authorization": KEY}),
        ("POST", "/v1/embeddings", {"Authorization": f"Bearer {KEY}x"}),
        ("POST", "/v1/embeddings", {"Authorization": f"Bearer {KEY[:-1]}"}),
        ("GET", "/nowhere", {}),
    ]
    for method, path, headers in cases:
        reply = h.request(port, method, path, h.chat("qwen2.5-14b"), headers=headers)
        assert reply.status == 401, (path, headers)
        assert reply.json() == UNAUTHORIZED


def test_auth_accepts_every_valid_key(stack: Stack) -> None:
    """A standard `sk-` + 64 hex key and a 300-character key of every punctuation mark."""
    port = stack.port("auth")
    for key in API_KEYS:
        before = stack.qwen_total()
        reply = h.request(port, "POST", "/v1/chat/completions", h.chat("qwen2.5-14b"),
                          headers={"Authorization": f"Bearer {key['key']}"})
        assert reply.status == 200, reply.body
        assert stack.qwen_total() == before + 1
    reply = h.request(port, "GET", "/v1/models",
                      headers={"Authorization": f"bearer {API_KEYS[1]['key']}"})
    assert reply.status == 200


def test_keys_are_compared_exactly(stack: Stack) -> None:
    """nginx's map matched keys case-insensitively: another case of a key is another key."""
    port = stack.port("auth")
    for variant in (KEY.upper(), KEY.swapcase(), KEY.capitalize(), API_KEYS[1]["key"].lower()):
        reply = h.request(port, "GET", "/v1/models", headers={"Authorization": f"Bearer {variant}"})
        assert reply.status == 401, variant


def test_auth_exempts_health_and_ready(stack: Stack) -> None:
    port = stack.port("auth")
    assert h.request(port, "GET", "/health").status == 200
    assert h.request(port, "GET", "/ready").status == 200


def test_auth_off_needs_no_key(stack: Stack) -> None:
    assert h.request(stack.port("base"), "GET", "/v1/models").status == 200


def test_keys_reach_the_gateway_host_only_as_hashes(stack: Stack) -> None:
    runtime = stack.variants["auth"].runtime
    assert (runtime / "api_keys.js").stat().st_mode & 0o777 == 0o600
    rendered = "\n".join(path.read_text() for path in runtime.iterdir()
                         if path.suffix in (".conf", ".js"))
    for key in API_KEYS:
        assert key["key"] not in rendered
        assert hashlib.sha256(key["key"].encode()).hexdigest() in rendered
