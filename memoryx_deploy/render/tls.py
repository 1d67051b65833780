"""How soon the gateway's certificate (or the site CA) expires: what the plan and the preflight print and refuse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypedDict

from cryptography import x509


class CertificateInfo(TypedDict):
    subject: str
    not_after: str  # ISO 8601, UTC
    days_left: int


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
