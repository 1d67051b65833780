"""The gateway's TLS data (memoryx_gateway.tls): names, URL, refusals, and the expiry report
the preflight prints and judges."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from memoryx_deploy import StackError, build_stack, client_config, render_env
from memoryx_deploy.__main__ import load_config
from memoryx_deploy.inputs.tls import read_tls
from memoryx_deploy.render.tls import expiry_report

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
NOW = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
SITE_CA = {"enabled": True, "certificate": "site_ca", "site_ca_dir": "/srv/pki"}


@pytest.fixture
def config() -> dict[str, Any]:
    return load_config([ROOT / "group_vars" / "all" / "memoryx.yml"])


def _read(data: object) -> tuple[list[str], Any]:
    problems: list[str] = []
    tls = read_tls(problems, data, "mx-embed-01", "192.168.31.65", 11436)
    return problems, tls


def test_production_defaults_are_tls_with_a_site_ca_and_no_plain_http(config: dict[str, Any]) -> None:
    tls = build_stack(config, ADDRESSES)["gateway"]["tls"]
    assert tls["enabled"] is True
    assert tls["certificate"] == "site_ca"  # no vault certificate: the Jinja choice, read raw
    assert tls["plain_http_port"] == 0
    assert tls["url"] == "https://192.168.31.65:11436"
    assert tls["site_ca"]["names"] == ["mx-embed-01", "192.168.31.65", "localhost", "127.0.0.1"]
    assert tls["ca_bundle"].endswith("/ca.crt")  # the site CA dir is Jinja, read raw here


def test_no_tls_section_means_plain_http() -> None:
    problems, tls = _read(None)
    assert problems == []
    assert tls["enabled"] is False
    assert tls["url"] == "http://192.168.31.65:11436"
    assert tls["ca_bundle"] == ""


def test_extra_names_and_plain_port() -> None:
    problems, tls = _read({**SITE_CA, "names": ["gw.example.lan", "10.0.0.5", "127.0.0.1"],
                           "plain_http_port": 8080})
    assert problems == []
    assert tls["site_ca"]["names"] == ["mx-embed-01", "192.168.31.65", "localhost", "127.0.0.1",
                                       "gw.example.lan", "10.0.0.5"]
    assert tls["plain_http_port"] == 8080
    assert tls["ca_bundle"] == "/srv/pki/ca.crt"


@pytest.mark.parametrize(("data", "message"), [
    ({**SITE_CA, "certificate": "acme"},
     "gateway tls: certificate must be one of site_ca, vault, got 'acme'"),
    ({"enabled": True, "certificate": "site_ca"},
     "gateway tls: site_ca_dir must name the site CA's directory on the controller "
     "(certificate: site_ca)"),
    ({**SITE_CA, "plain_http_port": 11436},
     "gateway tls: plain_http_port 11436 is the gateway's TLS port; choose another, or 0"),
    ({**SITE_CA, "names": ["bad name"]},
     "gateway tls: names must be a list of DNS names and IP addresses; not one: 'bad name'"),
    ({**SITE_CA, "renew_days": 10, "expiry_fail_days": 14},
     "gateway tls: expiry_fail_days (14) must be below renew_days (10): the site CA issues a "
     "new certificate before the preflight would refuse it"),
    ({**SITE_CA, "colour": "blue"},
     "gateway tls: unknown key 'colour' (allowed: ca_bundle, certificate, enabled, "
     "expiry_fail_days, http2, names, plain_http_port, renew_days, site_ca_dir, valid_days)"),
])
def test_refusals_name_the_field(data: dict[str, Any], message: str) -> None:
    problems, _ = _read(data)
    assert message in problems


def test_stack_refuses_bad_tls(config: dict[str, Any]) -> None:
    config["gateway"]["tls"]["plain_http_port"] = 11436
    with pytest.raises(StackError) as caught:
        build_stack(config, ADDRESSES)
    assert any("plain_http_port 11436" in p for p in caught.value.problems)


def _certificate(days: int, name: str = "mx-embed-01") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(1)
                   .not_valid_before(NOW - dt.timedelta(days=1))
                   .not_valid_after(NOW + dt.timedelta(days=days, hours=1))
                   .sign(key, hashes.SHA256()))
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_vault_certificate_expiring_within_the_threshold_fails() -> None:
    _, tls = _read({"certificate": "vault", "expiry_fail_days": 14})
    ok = expiry_report(tls, _certificate(30), now=NOW)
    assert ok == {"lines": ["gateway certificate CN=mx-embed-01: expires "
                            "2026-12-27T01:00:00+00:00, in 30 days"], "problems": []}
    soon = expiry_report(tls, _certificate(10), now=NOW)
    assert soon["problems"] == [
        "gateway tls: the gateway certificate CN=mx-embed-01 expires 2026-12-07T01:00:00+00:00, "
        "in 10 days, within expiry_fail_days (14): put a renewed certificate and key in the vault"]
    missing = expiry_report(tls, "", now=NOW)
    assert missing["problems"] == ["gateway tls: certificate is 'vault' but "
                                   "vault_memoryx_gateway_tls_certificate is empty or missing"]


def test_site_ca_certificate_is_renewed_but_its_ca_is_judged() -> None:
    _, tls = _read(SITE_CA)
    report = expiry_report(tls, _certificate(5), _certificate(400, "MemoryX site CA"), now=NOW)
    assert report["problems"] == []
    assert report["lines"][0].endswith("in 5 days (issued again on the next run of the gateway play)")
    old_ca = expiry_report(tls, _certificate(500), _certificate(3, "MemoryX site CA"), now=NOW)
    assert len(old_ca["problems"]) == 1
    assert old_ca["problems"][0].startswith("gateway tls: the site CA CN=MemoryX site CA expires")
    fresh = expiry_report(tls, "", "", now=NOW)
    assert fresh == {"lines": [
        "gateway certificate: none yet in /srv/pki (created on the next run of the gateway play)",
        "site CA: none yet in /srv/pki (created on the next run of the gateway play)"],
        "problems": []}


def test_tls_off_report() -> None:
    _, tls = _read(None)
    assert expiry_report(tls, "") == {"lines": ["gateway TLS off: clients use plain HTTP"],
                                      "problems": []}


def test_client_config_carries_the_https_url_and_ca_bundle(config: dict[str, Any]) -> None:
    stack = build_stack(config, ADDRESSES)
    settings = client_config(stack, stack["gateway"]["tls"]["url"], "/opt/memoryx/ca.crt")
    assert settings["gateway"] == {"url": "https://192.168.31.65:11436",
                                   "ca_bundle": "/opt/memoryx/ca.crt"}
    assert settings["llama"]["base_url"] == "https://192.168.31.65:11436/v1"
    assert "MEMORYX_GATEWAY_CA_BUNDLE=/opt/memoryx/ca.crt\n" in render_env(settings)
    with pytest.raises(StackError):
        client_config(stack, "http://192.168.31.65:11436", "/opt/memoryx/ca.crt")
