"""Role gateway_tls on a temporary directory, connection local: a site CA is created when
absent and reused when present (one made by openssl, as lab/lab.sh does), the certificate is
issued with the names asked for and signed by that CA, a second run and check mode change
nothing, and half a CA is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAMES = ["mx-embed-01", "10.99.0.65", "localhost", "127.0.0.1"]


def _run(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    play = directory.parent / "play.yml"
    play.write_text(json.dumps([{
        "name": "Issue the gateway certificate", "hosts": "localhost", "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable},
        "roles": [{"role": "gateway_tls",
                   "vars": {"gateway_tls_dir": str(directory), "gateway_tls_names": NAMES}}],
    }]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run([str(BIN / "ansible-playbook"), "-i", "localhost,", *extra, str(play)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def _changed(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stdout[-3000:]
    recap = result.stdout[result.stdout.index("PLAY RECAP"):]
    return int(recap.split("changed=")[1].split()[0])


def _verify(directory: Path) -> x509.Certificate:
    check = subprocess.run(["openssl", "verify", "-CAfile", str(directory / "ca.crt"),
                            str(directory / "memoryx-gateway.crt")],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    return x509.load_pem_x509_certificate((directory / "memoryx-gateway.crt").read_bytes())


def _names(certificate: x509.Certificate) -> list[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in san]


def test_creates_then_changes_nothing(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    assert _changed(_run(pki, "--check")) > 0
    assert not (pki / "ca.crt").exists()  # check mode wrote nothing
    assert _changed(_run(pki)) > 0
    certificate = _verify(pki)
    assert _names(certificate) == NAMES
    assert oct((pki / "ca.key").stat().st_mode & 0o777) == "0o600"
    assert oct((pki / "memoryx-gateway.key").stat().st_mode & 0o777) == "0o600"
    assert (pki / ".gitignore").read_text().splitlines()[-1] == "*"
    assert _changed(_run(pki)) == 0
    assert _changed(_run(pki, "--check")) == 0


def test_reuses_a_ca_made_by_openssl(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                    "-subj", "/CN=memoryx-lab CA", "-keyout", str(pki / "ca.key"),
                    "-out", str(pki / "ca.crt")], check=True, capture_output=True)
    before = (pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes()
    assert _changed(_run(pki)) > 0
    assert ((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes()) == before
    issuer = _verify(pki).issuer.rfc4514_string()
    assert issuer == "CN=memoryx-lab CA"


def test_refuses_half_a_ca(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "ca.crt").write_text("not a key\n")
    result = _run(pki)
    assert result.returncode != 0
    assert "a site CA needs ca.crt and ca.key together" in result.stdout
    assert not (pki / "memoryx-gateway.crt").exists()
