"""The environment every test gives Ansible: the project's ansible.cfg and the lab's vault id.

The lab's vault password reaches Ansible the Ansible way (vault id `lab`, the password client
lab/vault-password), as lab/env sets it for a shell; ansible.cfg names no lab file.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ansible_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_VAULT_IDENTITY_LIST": f"lab@{ROOT / 'lab' / 'vault-password'}",
        "ANSIBLE_NOCOLOR": "1",
        **extra,
    }
