"""A renewed gateway certificate, deployed by site.yml under keep-alive client traffic: new
connections get it, the client side's nginx does not reload, no request is lost."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

from cryptography import x509
from labkit import EMBED_HOST, GATEWAY_URL, LAB_CA, PlaybookRun, on_host, run_playbook

from tests.traffic import Traffic

PKI = LAB_CA.parent  # the lab's site CA (inventory/lab: gateway_tls_site_ca_dir)
ISSUED = [PKI / "memoryx-gateway.crt", PKI / "memoryx-gateway.key"]  # role gateway_tls's files
FRONT = "memoryx_gateway"
GATEWAY_HOST = "mx-embed-01"  # its inventory name (container mx-lab-embed)


def served_serial() -> int:
    """The serial of the certificate a new connection to the gateway gets."""
    host, port = GATEWAY_URL.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(LAB_CA))
    with socket.create_connection((host, int(port)), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def front_processes() -> list[str]:
    """PID and command of the client side's nginx master and workers (a reload replaces the
    workers)."""
    top = on_host(EMBED_HOST, f"docker top {FRONT} -eo pid,args").stdout.splitlines()[1:]
    return sorted(line.strip() for line in top if "nginx" in line)


def test_a_renewed_certificate_is_deployed_with_no_reload_and_no_lost_request(
        deployed: None, api_key: str, tmp_path: Path) -> None:
    before, processes = served_serial(), front_processes()
    for issued in ISSUED:  # gateway_tls issues a new key and certificate when both are absent
        issued.unlink()
    with Traffic(f"{GATEWAY_URL}/v1", api_key, "llama3.1-8b", workers=8, max_tokens=1) as traffic:
        run: PlaybookRun = run_playbook("site.yml", tmp_path / "renew")
    assert run.rc == 0, run.failures()
    renewed = x509.load_pem_x509_certificate(ISSUED[0].read_bytes()).serial_number
    assert (renewed != before, served_serial()) == (True, renewed)  # promoted, and served
    changed = [task for task in run.changed_tasks() if task.startswith(GATEWAY_HOST)]
    assert not [task for task in changed if "Reload gateway" in task], changed
    assert front_processes() == processes
    assert traffic.tally.sent > 0 and traffic.tally.failed == 0, traffic.tally.errors[:5]
