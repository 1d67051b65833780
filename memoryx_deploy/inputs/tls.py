"""TLS of the gateway (`memoryx_gateway.tls`): where its certificate comes from, the names it
carries, the URL clients call, and how soon the certificate (or the site CA) expires.

The certificate comes from Vault (`vault_memoryx_gateway_tls_certificate` and `..._key`) or is
issued by the site CA in `site_ca_dir` (role gateway_tls, on the controller). Keys never pass
through here: the expiry check reads certificates only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping

from memoryx_deploy.inputs.fields import Reader, show
from memoryx_deploy.schema.stack import GatewayTls, SiteCa

TLS_KEYS = ("enabled", "certificate", "site_ca_dir", "names", "valid_days", "renew_days",
            "expiry_fail_days", "plain_http_port", "http2", "ca_bundle")
SOURCES = ("site_ca", "vault")
# A DNS name or an IP address, as a certificate's subject alternative name takes it
NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9*]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9-]{1,63})*$")
LOOPBACK_NAMES = ["localhost", "127.0.0.1"]  # the gateway host's own checks (playbooks/verify.yml)


def split_tls(gateway: object) -> tuple[object, object]:
    """(`memoryx_gateway` without `tls`, its `tls`), so that the gateway's reader sees the keys
    it knows; `None` for `tls` when the data has none (TLS off)."""
    if not isinstance(gateway, Mapping) or "tls" not in gateway:
        return gateway, None
    return {key: value for key, value in gateway.items() if key != "tls"}, gateway["tls"]


def read_tls(problems: list[str], data: object, host: str, address: str,
             port: int, vault: bool = False) -> GatewayTls:
    """The gateway's TLS from `memoryx_gateway.tls` (absent: off). Its certificate names the
    gateway host, its address and loopback, then any `names` of the data. Its certificate comes
    from the vault when the vault holds one (`vault`), else from the site CA, unless the data
    says which."""
    enabled = data is not None
    reader = Reader(problems, "gateway tls", data if enabled else {}, TLS_KEYS)
    enabled = enabled and reader.boolean("enabled", True)
    source = reader.raw("certificate", "vault" if vault else "site_ca")
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


