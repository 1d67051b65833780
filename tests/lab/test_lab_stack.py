"""The deployed lab stack: idempotence, real client traffic on every route (over TLS, trusting
the lab's site CA), pinning, firewall."""

from __future__ import annotations

import json
import math
import ssl

import httpx
import ollama
import openai
import pytest
from labkit import EMBED_HOST, GATEWAY_URL, LAB_CA, LLM_HOST, PROBE, PlaybookRun, on_host, sh
from openai import OpenAI

HOST_CA = "/etc/memoryx/gateway/ca.crt"  # the CA bundle the gateway role writes on its host


INSTANCES = {  # name -> (container, port, gpu, served model), the production layout
    "llama-gpu0-0": ("vllm_llama_gpu0_0", 11401, "0", "llama3.1-8b"),
    "llama-gpu0-1": ("vllm_llama_gpu0_1", 11402, "0", "llama3.1-8b"),
    "llama-gpu1-0": ("vllm_llama_gpu1_0", 11403, "1", "llama3.1-8b"),
    "llama-gpu1-1": ("vllm_llama_gpu1_1", 11404, "1", "llama3.1-8b"),
    "qwen-gpu2": ("vllm_qwen_gpu2", 11405, "2", "qwen2.5-14b"),
}


def test_first_deploy_succeeds(deploy_runs: dict[str, PlaybookRun]) -> None:
    first = deploy_runs["first"]
    assert first.total("failures") == 0 and first.total("dark") == 0
    assert first.total("changed") > 0


def test_rerun_changes_nothing(deploy_runs: dict[str, PlaybookRun]) -> None:
    second = deploy_runs["second"]
    assert second.rc == 0, second.failures()
    assert second.total("changed") == 0, second.changed_tasks()


def test_check_mode_changes_nothing(deploy_runs: dict[str, PlaybookRun]) -> None:
    check = deploy_runs["check"]
    assert check.rc == 0, check.failures()
    assert check.total("changed") == 0, check.changed_tasks()


@pytest.fixture(scope="module")
def llm(deployed: None, api_key: str) -> OpenAI:
    return OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=60)


@pytest.mark.parametrize(
    ("prefix", "model"),
    [
        ("/v1", "llama3.1-8b"),
        ("/v1", "qwen2.5-14b"),
        ("/llama/v1", "llama3.1-8b"),
        ("/qwen/v1", "qwen2.5-14b"),
    ],
)
def test_chat_on_every_llm_route(deployed: None, api_key: str, prefix: str, model: str) -> None:
    client = OpenAI(base_url=f"{GATEWAY_URL}{prefix}", api_key=api_key, max_retries=0, timeout=60)
    reply = client.chat.completions.create(
        model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.model == model
    assert reply.choices[0].message.content


def test_streamed_chat(llm: OpenAI) -> None:
    stream = llm.chat.completions.create(
        model="llama3.1-8b",
        max_tokens=6,
        stream=True,
        messages=[{"role": "user", "content": "count"}],
    )
    pieces = [
        chunk.choices[0].delta.content
        for chunk in stream
        if chunk.choices and chunk.choices[0].delta.content
    ]
    assert len(pieces) >= 2


def test_completions(llm: OpenAI) -> None:
    reply = llm.completions.create(model="llama3.1-8b", prompt="MemoryX is", max_tokens=4)
    assert reply.choices[0].text


def test_embeddings_openai(llm: OpenAI) -> None:
    reply = llm.embeddings.create(model="bge-m3", input=["first text", "second text"])
    vectors = [d.embedding for d in reply.data]
    assert [len(v) for v in vectors] == [1024, 1024]
    assert math.isclose(math.fsum(x * x for x in vectors[0]), 1.0, rel_tol=1e-3)


def test_embeddings_ollama_on_api_and_embed_routes(deployed: None, api_key: str) -> None:
    headers = {"Authorization": f"Bearer {api_key}"}
    legacy = ollama.Client(host=GATEWAY_URL, headers=headers).embeddings(
        model="bge-m3", prompt="test"
    )
    assert len(legacy["embedding"]) == 1024
    prefixed = ollama.Client(host=f"{GATEWAY_URL}/embed", headers=headers).embed(
        model="bge-m3", input="test"
    )
    assert len(prefixed["embeddings"][0]) == 1024


def test_gateway_refuses_a_missing_key(deployed: None) -> None:
    run = sh(
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        str(LAB_CA),
        f"{GATEWAY_URL}/v1/models",
        check=False,
    )
    assert run.stdout == "401"


def test_real_clients_verifying_the_lab_ca(deployed: None, api_key: str,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's client settings: openai base_url + an httpx client trusting the CA bundle,
    ollama host + verify."""
    monkeypatch.delenv("SSL_CERT_FILE")
    trust = ssl.create_default_context(cafile=str(LAB_CA))
    llm = OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=60,
                 http_client=httpx.Client(verify=trust))
    assert llm.chat.completions.create(
        model="qwen2.5-14b", max_tokens=2, messages=[{"role": "user", "content": "hi"}]).choices
    embed = ollama.Client(host=GATEWAY_URL, verify=trust,
                          headers={"Authorization": f"Bearer {api_key}"})
    assert len(embed.embed(model="bge-m3", input="test")["embeddings"][0]) == 1024


def test_a_client_that_does_not_trust_the_lab_ca_fails(deployed: None, api_key: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSL_CERT_FILE")
    llm = OpenAI(base_url=f"{GATEWAY_URL}/v1", api_key=api_key, max_retries=0, timeout=30)
    with pytest.raises(openai.APIConnectionError) as failed:
        llm.models.list()
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value.__cause__)
    with pytest.raises(ConnectionError):
        ollama.Client(host=GATEWAY_URL, headers={"Authorization": f"Bearer {api_key}"}).list()


def test_plain_http_is_closed_and_http2_offered(deployed: None) -> None:
    """Production's defaults: TLS on 11436, no plain-HTTP listener (the router and the
    client side's status port listen on the gateway host's loopback only); HTTP/2 by ALPN."""
    plain = on_host(PROBE, "curl -s -o /dev/null -w '%{http_code}' --max-time 5 "
                           "http://10.99.0.65:11436/health", check=False)
    assert plain.stdout == "400"  # nginx: a plain HTTP request sent to the HTTPS port
    listening = on_host(EMBED_HOST, "ss -Hltnp | grep nginx").stdout
    ports = sorted({line.split()[3] for line in listening.splitlines()})
    # 11437: the router; 11438: the client side's idle-connection count (its quiesced reload)
    assert ports == ["0.0.0.0:11436", "127.0.0.1:11437", "127.0.0.1:11438"], listening
    http2 = sh("curl", "-s", "-o", "/dev/null", "-w", "%{http_version}", "--http2",
               "--cacert", str(LAB_CA), f"{GATEWAY_URL}/health")
    assert http2.stdout == "2"


def test_document_curl_checks(deployed: None, api_key: str) -> None:
    """The design document's own start-up checks, on the hosts, as an operator types them."""
    for name, (container, port, _gpu, model) in INSTANCES.items():
        listed = json.loads(on_host(LLM_HOST, f"curl -s http://localhost:{port}/v1/models").stdout)
        assert [m["id"] for m in listed["data"]] == [model], name
        logs = sh("docker", "exec", LLM_HOST, "docker", "logs", container, "--tail", "20")
        assert logs.returncode == 0
    auth = f"-H 'Authorization: Bearer {api_key}'"
    gw = f"--cacert {HOST_CA} https://localhost:11436"  # TLS: the CA the role put next to it
    assert on_host(EMBED_HOST, f"curl -s {gw}/health").stdout.strip() == "OK"
    emb = json.loads(
        on_host(
            EMBED_HOST,
            f"""curl -s {auth} {gw}/v1/embeddings -d '{{"model":"bge-m3","input":"test"}}'""",
        ).stdout
    )
    assert len(emb["data"][0]["embedding"]) == 1024
    chat = json.loads(
        on_host(
            EMBED_HOST,
            f"""curl -s {auth} {gw}/v1/chat/completions -d '{{"model":"llama3.1-8b","messages":[{{"role":"user","content":"hello"}}]}}'""",  # noqa: E501 - the document's command, verbatim
        ).stdout
    )
    assert chat["model"] == "llama3.1-8b"
    qwen = json.loads(
        on_host(
            EMBED_HOST,
            f"""curl -s {auth} {gw}/qwen/v1/chat/completions -d '{{"model":"qwen2.5-14b","messages":[{{"role":"user","content":"1+1=?"}}]}}'""",  # noqa: E501 - the document's command, verbatim
        ).stdout
    )
    assert qwen["model"] == "qwen2.5-14b"
    smi = on_host(LLM_HOST, "nvidia-smi --query-gpu=index,memory.used,memory.total --format=csv")
    assert smi.stdout.count("MiB") >= 6


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_each_instance_pinned_to_its_gpu(deployed: None, name: str) -> None:
    container, port, gpu, _model = INSTANCES[name]
    inspect = json.loads(sh("docker", "exec", LLM_HOST, "docker", "inspect", container).stdout)[0]
    requests = inspect["HostConfig"]["DeviceRequests"]
    assert [(r["Driver"], r["DeviceIDs"]) for r in requests] == [("nvidia", [gpu])]
    info = json.loads(on_host(LLM_HOST, f"curl -s http://localhost:{port}/sim/info").stdout)
    assert str(info["visible_devices"]) == gpu


def test_backend_ports_admit_only_the_gateway(deployed: None) -> None:
    probe = on_host(
        PROBE,
        "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://10.99.0.10:11401/health",
        check=False,
    )
    assert probe.stdout in ("000", ""), f"a LAN client reached a backend: {probe.stdout}"
    gateway_host = on_host(
        EMBED_HOST,
        "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://10.99.0.10:11401/health",
    )
    assert gateway_host.stdout == "200"
    door = on_host(  # reachability only (-k: the probe holds no CA; TLS is test_real_clients...)
        PROBE, "curl -sk -o /dev/null -w '%{http_code}' --max-time 5 https://10.99.0.65:11436/health"
    )
    assert door.stdout == "200"
    ollama_port = on_host(
        PROBE,
        "curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://10.99.0.65:11434/",
        check=False,
    )
    assert ollama_port.stdout in ("000", ""), (
        "Ollama must listen on the gateway host's loopback only"
    )
