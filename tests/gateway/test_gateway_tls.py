"""TLS at the gateway (variant `tls`: certificate issued by role gateway_tls from a site CA made
under tmp): the real openai and ollama clients verifying that CA work on every route; a client
that does not trust the CA fails; TLS 1.2 and 1.3 only; HTTP/2 by ALPN; the plain-HTTP port
the data enabled serves too; the client side's own reloads keep HTTP/2 clients whole."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import harness as h
import httpx
import ollama
import openai
import pytest
from harness import API_KEYS, Stack

KEY = API_KEYS[0]["key"]


def _ca(stack: Stack) -> Path:
    return Path(stack.variants["tls"].extra["nginx_unified_tls_site_ca"]["dir"]) / "ca.crt"


def _url(stack: Stack) -> str:
    return f"https://localhost:{stack.port('tls')}"


def _curl(stack: Stack, *args: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(_ca(stack)),
         "-H", f"Authorization: Bearer {key}", *args],
        capture_output=True, text=True, timeout=30, check=False,
    )


def test_openai_client_verifying_the_site_ca_works_on_every_route(stack: Stack) -> None:
    http = httpx.Client(verify=ssl.create_default_context(cafile=str(_ca(stack))))
    client = openai.OpenAI(base_url=_url(stack) + "/v1", api_key=KEY, http_client=http,
                           max_retries=0)
    models = sorted(m.id for m in client.models.list())
    assert models == sorted(h.MODELS)
    for model in ("llama3.1-8b", "qwen2.5-14b"):
        reply = client.chat.completions.create(
            model=model, max_tokens=2, messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        with client.chat.completions.create(
                model=model, max_tokens=2, stream=True,
                messages=[{"role": "user", "content": "hi"}]) as chunks:
            assert any(c.choices[0].finish_reason for c in chunks if c.choices)
        assert client.completions.create(model=model, prompt="hi", max_tokens=2).choices
    assert len(client.embeddings.create(model="bge-m3", input=["a", "b"]).data) == 2
    for prefix, model in (("/llama/v1", "llama3.1-8b"), ("/qwen/v1", "qwen2.5-14b"),
                          ("/embed/v1", "bge-m3")):
        routed = openai.OpenAI(base_url=_url(stack) + prefix, api_key=KEY, http_client=http,
                               max_retries=0)
        if model == "bge-m3":
            assert routed.embeddings.create(model=model, input="a").data
        else:
            assert routed.chat.completions.create(
                model=model, max_tokens=1, messages=[{"role": "user", "content": "hi"}]).choices


def test_ollama_client_verifying_the_site_ca_works(stack: Stack) -> None:
    client = ollama.Client(host=_url(stack),
                           verify=ssl.create_default_context(cafile=str(_ca(stack))),
                           headers={"Authorization": f"Bearer {KEY}"})
    assert len(client.embed(model="bge-m3", input=["a", "b"])["embeddings"]) == 2
    assert client.embeddings(model="bge-m3", prompt="a")["embedding"]
    assert [m.model for m in client.list().models]
    assert client.show("bge-m3") is not None


def test_a_client_that_does_not_trust_the_ca_fails(stack: Stack) -> None:
    client = openai.OpenAI(base_url=_url(stack) + "/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.APIConnectionError) as failed:
        client.models.list()
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value.__cause__)
    with pytest.raises(ConnectionError):  # ollama's message for an httpx.ConnectError
        ollama.Client(host=_url(stack)).list()
    reply = _curl(stack, "--cacert", "/etc/ssl/certs/ca-certificates.crt", f"{_url(stack)}/health")
    assert reply.returncode == 60  # curl: peer certificate cannot be authenticated


def test_certificate_names_and_tls_versions(stack: Stack) -> None:
    port = stack.port("tls")
    for name in ("localhost", h.LOOPBACK):  # the data's names, by DNS name and by address
        ok = _curl(stack, "-o", "/dev/null", "-w", "%{http_code}", f"https://{name}:{port}/v1/models")
        assert ok.stdout == "200", ok.stderr
    for version in ("--tls-max 1.1", "--tlsv1.2 --tls-max 1.2", "--tlsv1.3"):
        result = _curl(stack, *version.split(), "-o", "/dev/null", "-w", "%{http_code}",
                       f"{_url(stack)}/health")
        assert (result.stdout == "200") == ("1.1" not in version), (version, result.stderr)


def test_http2_by_alpn_and_plain_http_port(stack: Stack) -> None:
    result = _curl(stack, "--http2", "-o", "/dev/null", "-w", "%{http_version}",
                   f"{_url(stack)}/v1/models")
    assert result.stdout == "2", result.stderr
    plain = int(stack.variants["tls"].extra["nginx_unified_http_port"])
    reply = h.request(plain, "GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    assert reply.status == 200
    assert h.request(plain, "GET", "/v1/models").status == 401  # the router's keys apply


def test_keys_and_client_address_reach_the_router(stack: Stack) -> None:
    bad = _curl(stack, "-o", "/dev/null", "-w", "%{http_code}", f"{_url(stack)}/v1/models",
                key="not-a-key-of-the-gateway")
    assert bad.stdout == "401"
    _curl(stack, "-o", "/dev/null", f"{_url(stack)}/v1/models")
    last = stack.gateways["tls"].access_log()[-1]
    assert last["remote_addr"] == h.LOOPBACK and last["key"] == "memoryx"
