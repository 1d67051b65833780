"""Jinja filters memoryx_stack, memoryx_plan, memoryx_client_*: a shim over memoryx_deploy."""

import sys
from pathlib import Path

from ansible.errors import AnsibleFilterError

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from memoryx_deploy.filters import Filter, filters


class FilterModule:
    def filters(self) -> dict[str, Filter]:
        return filters(AnsibleFilterError)
