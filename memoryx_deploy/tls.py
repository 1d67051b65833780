"""TLS of the gateway (`memoryx_gateway.tls`): where its certificate comes from, the names it
carries, the URL clients call, and how soon the certificate (or the site CA) expires.

The certificate comes from Vault (`vault_memoryx_gateway_tls_certificate` and `..._key`) or is
issued by the site CA in `site_ca_dir` (role gateway_tls, on the controller). Keys never pass
through here: the expiry check reads certificates only.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Mapping
from typing import Any, TypedDict

from cryptography import x509

from memoryx_deploy.fields import Reader, show

TLS_KEYS = ("enabled", "certificate", "site_ca_dir", "names", "valid_days", "renew_days",
            "expiry_fail_days", "plain_http_port", "http2", "ca_bundle")
SOURCES = ("site_ca", "vault")
# A DNS name or an IP address, as a certificate's subject alternative name takes it
NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")
LOOPBACK_NAMES = ["localhost", "127.0.0.1"]  # the gateway host's own checks (playbooks/verify.yml)


class SiteCa(TypedDict):
    dir: str
    names: list[str]
    valid_days: int
    renew_days: int


class GatewayTls(TypedDict):
    enabled: bool
    certificate: str  # "site_ca" or "vault"
    site_ca: SiteCa
    expiry_fail_days: int
    plain_http_port: int  # 0: plain HTTP off
    http2: bool
    ca_bundle: str  # the CA bundle clients trust, on the controller ("" = system store)
    url: str  # what clients call: https://address:port (http:// without TLS)


class CertificateInfo(TypedDict):
    subject: str
    not_after: str  # ISO 8601, UTC
    days_left: int


def split_tls(gateway: object) -> tuple[object, object]:
    """(`memoryx_gateway` without `tls`, its `tls`), so that the gateway's reader sees the keys
    it knows; `None` for `tls` when the data has none (TLS off)."""
    if not isinstance(gateway, Mapping) or "tls" not in gateway:
        return gateway, None
    return {key: value for key, value in gateway.items() if key != "tls"}, gateway["tls"]


def read_tls(problems: list[str], data: object, host: str, address: str,
             port: int) -> GatewayTls:
    """The gateway's TLS from `memoryx_gateway.tls` (absent: off). Its certificate names the
    gateway host, its address and loopback, then any `names` of the data."""
    enabled = data is not None
    reader = Reader(problems, "gateway tls", data if enabled else {}, TLS_KEYS)
    enabled = enabled and reader.boolean("enabled", True)
    source = reader.raw("certificate", "site_ca")
    if isinstance(source, str) and "{{" in source:
        source = "site_ca"  # chosen by Jinja from the vault (Ansible renders it; the CLI cannot)
    elif not isinstance(source, str):
        reader.fail(f"certificate must be one of {', '.join(SOURCES)}, got {show(source)}")
        source = ""
    if source and source not in SOURCES:  # an empty one was reported above
        reader.fail(f"certificate must be one of {', '.join(SOURCES)}, got {show(source)}")
    site_ca_dir = reader.raw("site_ca_dir", "")
    if enabled and source == "site_ca" and not (isinstance(site_ca_dir, str) and site_ca_dir):
        reader.fail("site_ca_dir must name the site CA's directory on the controller "
                    "(certificate: site_ca)")
    extra = reader.raw("names", [])
    bad = ([extra] if not isinstance(extra, list)
           else [n for n in extra if not (isinstance(n, str) and _is_name(n))])
    if bad:
        reader.fail(f"names must be a list of DNS names and IP addresses; not one: {show(bad[0])}")
        extra = []
    valid_days = reader.integer("valid_days", 1, 3650, 825)
    renew_days = reader.integer("renew_days", 1, 3650, 60)
    fail_days = reader.integer("expiry_fail_days", 0, 3650, 14)
    if renew_days >= valid_days:
        reader.fail(f"renew_days ({renew_days}) must be below valid_days ({valid_days})")
    if source == "site_ca" and fail_days >= renew_days:
        reader.fail(f"expiry_fail_days ({fail_days}) must be below renew_days ({renew_days}): "
                    "the site CA issues a new certificate before the preflight would refuse it")
    plain = reader.integer("plain_http_port", 0, 65535, 0)
    if enabled and plain and plain == port:
        reader.fail(f"plain_http_port {plain} is the gateway's TLS port; choose another, or 0")
    ca_bundle = reader.raw("ca_bundle", "")
    if not isinstance(ca_bundle, str):
        reader.fail(f"ca_bundle must be a path on the controller, got {show(ca_bundle)}")
        ca_bundle = ""
    if source == "site_ca" and isinstance(site_ca_dir, str) and site_ca_dir and not ca_bundle:
        ca_bundle = site_ca_dir.rstrip("/") + "/ca.crt"
    names = _unique([host, address, *LOOPBACK_NAMES, *extra])
    return GatewayTls(
        enabled=enabled,
        certificate=source,
        site_ca=SiteCa(dir=site_ca_dir if isinstance(site_ca_dir, str) else "", names=names,
                       valid_days=valid_days, renew_days=renew_days),
        expiry_fail_days=fail_days,
        plain_http_port=plain if enabled else 0,
        http2=reader.boolean("http2", True),
        ca_bundle=ca_bundle if enabled else "",
        url=gateway_url(enabled, address, port),
    )


def gateway_url(tls: bool, address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{'https' if tls else 'http'}://{host}:{port}"


def _is_name(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(NAME.match(name))


def _unique(names: list[str]) -> list[str]:
    return [name for i, name in enumerate(names) if name and name not in names[:i]]


def certificate_info(pem: str, now: dt.datetime | None = None) -> CertificateInfo:
    """Subject, end of validity and whole days left of the first certificate in `pem`."""
    certificate = x509.load_pem_x509_certificate(pem.encode())
    moment = now or dt.datetime.now(dt.UTC)
    not_after = certificate.not_valid_after_utc
    return CertificateInfo(subject=certificate.subject.rfc4514_string(),
                           not_after=not_after.isoformat(),
                           days_left=(not_after - moment) // dt.timedelta(days=1))


def expiry_report(tls: Mapping[str, Any], certificate_pem: str, ca_pem: str = "",
                  now: dt.datetime | None = None) -> dict[str, list[str]]:
    """{lines, problems}: what the plan and the preflight print about the certificate's expiry,
    and what the preflight refuses. A Vault certificate expiring within `expiry_fail_days` is
    refused; a site-CA one is issued again within `renew_days` (so only its CA is judged)."""
    lines: list[str] = []
    problems: list[str] = []
    if not tls.get("enabled"):
        return {"lines": ["gateway TLS off: clients use plain HTTP"], "problems": []}
    fail_days = int(tls["expiry_fail_days"])
    site_ca = tls["certificate"] == "site_ca"
    for what, pem in (("gateway certificate", certificate_pem), ("site CA", ca_pem)):
        if not pem.strip():
            if what == "gateway certificate" and not site_ca:
                problems.append("gateway tls: certificate is 'vault' but "
                                "vault_memoryx_gateway_tls_certificate is empty or missing")
            elif site_ca:
                lines.append(f"{what}: none yet in {tls['site_ca']['dir']} (created on the "
                             "next run of the gateway play)")
            continue
        try:
            info = certificate_info(pem, now)
        except ValueError as error:
            problems.append(f"gateway tls: the {what} is not a PEM certificate ({error})")
            continue
        left = info["days_left"]
        note = ""
        if what == "gateway certificate" and site_ca and left < tls["site_ca"]["renew_days"]:
            note = " (issued again on the next run of the gateway play)"
        lines.append(f"{what} {info['subject']}: expires {info['not_after']}, "
                     f"in {left} days{note}")
        judged = what == "site CA" or not site_ca
        if judged and left < fail_days:
            problems.append(f"gateway tls: the {what} {info['subject']} expires "
                            f"{info['not_after']}, in {left} days, within expiry_fail_days "
                            f"({fail_days}): {_renew_hint(what, site_ca)}")
    return {"lines": lines, "problems": problems}


def _renew_hint(what: str, site_ca: bool) -> str:
    if what == "site CA":
        return ("make a new site CA (remove ca.crt and ca.key from site_ca_dir; clients must "
                "trust the new ca.crt)")
    return "put a renewed certificate and key in the vault" if not site_ca else ""
