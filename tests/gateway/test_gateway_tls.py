"""TLS at the gateway (variant `tls`: certificate issued by role gateway_tls from a site CA made
under tmp): the real openai and ollama clients verifying that CA work on every route; a client
that does not trust the CA fails; TLS 1.2 and 1.3 only; HTTP/2 by ALPN; the plain-HTTP port
the data enabled serves too; a renewed certificate reaches new connections with no reload and
no request lost, and a handshake never mixes two renewals; a certificate whose key does not
match is refused before it is promoted."""

from __future__ import annotations

import datetime
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import harness as h
import httpx
import ollama
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from harness import API_KEYS, Stack

from tests.traffic import Traffic

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


def _pki(stack: Stack) -> Path:
    return Path(stack.variants["tls"].extra["nginx_unified_tls_site_ca"]["dir"])


def _served_serial(stack: Stack) -> int:
    """The serial of the certificate a new TLS connection gets."""
    context = ssl.create_default_context(cafile=str(_ca(stack)))
    with socket.create_connection((h.LOOPBACK, stack.port("tls")), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _renewal(stack: Stack, key: ec.EllipticCurvePrivateKey | None = None
             ) -> tuple[x509.Certificate, bytes]:
    """What role gateway_tls issues on renewal: a new key and a certificate for the same names
    from the site CA; gateway.pem's content for them (`key` in place of the certificate's own
    key makes a pair that does not match)."""
    pki = _pki(stack)
    ca = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    current = x509.load_pem_x509_certificate((pki / "memoryx-gateway.crt").read_bytes())
    own = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(current.subject).issuer_name(ca.subject)
               .public_key(own.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=30)))
    for extension in current.extensions:
        if extension.oid != x509.oid.ExtensionOID.AUTHORITY_KEY_IDENTIFIER:
            builder = builder.add_extension(extension.value, extension.critical)
    certificate = builder.sign(ca_key, hashes.SHA256())
    key_pem = (key or own).private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
    return certificate, certificate.public_bytes(serialization.Encoding.PEM) + key_pem


def _wait_for_more(traffic: Traffic, count: int) -> None:
    goal = traffic.tally.sent + count
    h.wait_until(lambda: traffic.tally.sent >= goal, 60, f"{count} more requests of the traffic")


def test_a_renewed_certificate_reaches_new_connections_with_no_reload(
        stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway, runtime = stack.gateways["tls"], stack.variants["tls"].runtime
    processes = (gateway.front.proc.pid, gateway.front.workers())
    before = _served_serial(stack)
    kept = http.client.HTTPSConnection(
        "localhost", stack.port("tls"), timeout=10,
        context=ssl.create_default_context(cafile=str(_ca(stack))))
    kept.request("GET", "/health")
    assert kept.getresponse().read() and kept.sock is not None
    renewed, pem = _renewal(stack)
    monkeypatch.setenv("SSL_CERT_FILE", str(_ca(stack)))  # the keep-alive clients trust the CA
    with Traffic(_url(stack) + "/v1", KEY, "llama3.1-8b", workers=4, max_tokens=1) as traffic:
        _wait_for_more(traffic, 40)
        staged = runtime / "gateway.pem.new"  # as the role promotes it: written, then renamed
        staged.write_bytes(pem)
        staged.rename(runtime / "gateway.pem")
        after = _served_serial(stack)
        _wait_for_more(traffic, 40)
    assert (before != after, after) == (True, renewed.serial_number)
    kept.request("GET", "/health")  # a connection made before the renewal goes on
    assert kept.getresponse().status == 200
    kept.close()
    assert (gateway.front.proc.pid, gateway.front.workers()) == processes  # nothing reloaded
    assert traffic.tally.failed == 0, traffic.tally.errors[:5]


def test_a_handshake_never_pairs_a_certificate_with_another_renewals_key(stack: Stack) -> None:
    """gateway.pem renamed over and over, between two renewals with different keys, while new
    connections handshake: each gets one whole pair. Naming the file in ssl_certificate and
    in ssl_certificate_key read it twice, and a rename between the reads failed a third of
    these handshakes (TLS alert "internal error")."""
    runtime = stack.variants["tls"].runtime
    live = runtime / "gateway.pem"
    original = live.read_bytes()
    pairs = [_renewal(stack), _renewal(stack)]
    context = ssl.create_default_context(cafile=str(_ca(stack)))
    stop, swapping = threading.Event(), threading.Event()
    renames = 0

    def swap() -> None:
        nonlocal renames
        while not stop.is_set():
            staged = runtime / "gateway.pem.new"
            staged.write_bytes(pairs[renames % 2][1])
            staged.rename(live)
            renames += 1
            swapping.set()

    served: list[int] = []
    failures: list[str] = []
    swapper = threading.Thread(target=swap)
    swapper.start()
    try:
        # From the first rename on, gateway.pem holds one of the two renewals (before it, the
        # original: a handshake then would serve a third certificate).
        assert swapping.wait(30), "the renewals never replaced gateway.pem"
        while len(served) + len(failures) < 400:
            try:
                with socket.create_connection((h.LOOPBACK, stack.port("tls")), timeout=10) as raw, \
                        context.wrap_socket(raw, server_hostname="localhost") as tls:
                    der = tls.getpeercert(binary_form=True)
                assert der is not None
                served.append(x509.load_der_x509_certificate(der).serial_number)
            except (ssl.SSLError, OSError) as error:
                failures.append(repr(error))
    finally:
        stop.set()
        swapper.join()
        staged = runtime / "gateway.pem.new"
        staged.write_bytes(original)
        staged.rename(live)
    assert failures == [], (len(failures), failures[:3])
    assert set(served) == {pair[0].serial_number for pair in pairs}, renames  # both were served


def test_the_check_before_promotion_refuses_a_key_that_does_not_match(
        stack: Stack, tmp_path: Path) -> None:
    """files/validate.sh, run by the role on the staged set before anything is promoted: the
    client side reads gateway.pem only at handshakes, so nginx -t of its configuration alone
    would pass a certificate whose key is another's."""
    staged = tmp_path / "staged"
    shutil.copytree(stack.variants["tls"].runtime, staged,
                    ignore=shutil.ignore_patterns("*.pid", "*.log", "*.out", "*.sock", "*.json"))
    _, good = _renewal(stack)
    _, bad = _renewal(stack, key=ec.generate_private_key(ec.SECP256R1()))
    script = h.ROOT / "roles/nginx_unified/files/validate.sh"
    env = {**os.environ, "PATH": f"{Path(h.NGINX).parent}:{os.environ['PATH']}"}

    def validate(pem: bytes) -> subprocess.CompletedProcess[str]:
        (staged / "gateway.pem").write_bytes(pem)
        return subprocess.run(["sh", str(script), str(staged)], capture_output=True, text=True,
                              timeout=60, check=False, env=env)

    accepted = validate(good)
    assert accepted.returncode == 0, accepted.stderr
    refused = validate(bad)
    assert refused.returncode != 0
    assert "key values mismatch" in refused.stderr, refused.stderr
