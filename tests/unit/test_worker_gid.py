"""roles/nginx_unified/files/worker_gid.sh: the group the gateway image's nginx workers run as
(they read gateway.pem at each handshake), from the `user` directive or from how nginx was built."""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/nginx_unified/files/worker_gid.sh"


def worker_gid(tmp_path: Path, user: str, built_with: str) -> subprocess.CompletedProcess[str]:
    """The script under sh, with an `nginx -V` that reports `built_with` as its configure arguments."""
    fake = tmp_path / "nginx"
    fake.write_text(f"#!/bin/sh\necho 'nginx version: nginx/1.28.0' >&2\n"
                    f"echo 'configure arguments: --prefix=/etc/nginx {built_with}' >&2\n")
    fake.chmod(0o755)
    return subprocess.run(["sh", str(SCRIPT), user], capture_output=True, text=True,
                          timeout=30, check=False, env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"})


@pytest.mark.parametrize(("user", "built_with", "group"), [
    ("", "--user=root --group=root --with-http_ssl_module", "root"),  # as the official image: --user/--group
    ("", "--with-http_ssl_module", pwd.getpwnam("nobody").pw_gid),  # Debian's: built-in nobody
    ("root", "--user=nobody", "root"),  # the directive wins over the build
    ("nobody root", "", "root"),  # user and group
])
def test_the_workers_group(tmp_path: Path, user: str, built_with: str, group: str | int) -> None:
    result = worker_gid(tmp_path, user, built_with)
    assert result.returncode == 0, result.stderr
    expected = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
    assert result.stdout == f"{expected}\n"


@pytest.mark.parametrize(("user", "built_with", "named"), [
    ("ghost-user", "", "no user ghost-user"),
    ("nobody ghost-group", "", "no group ghost-group"),
    ("", "--user=nobody --group=ghost-group", "no group ghost-group"),
])
def test_a_user_or_group_the_image_lacks_fails_naming_it(
        tmp_path: Path, user: str, built_with: str, named: str) -> None:
    result = worker_gid(tmp_path, user, built_with)
    assert result.returncode != 0
    assert named in result.stderr and result.stdout == ""
