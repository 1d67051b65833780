"""Vars plugin memoryx_yaml: refuse a YAML syntax error in group_vars/host_vars by file and line,
before Ansible's host_group_vars reports it without the file. A shim over memoryx_deploy."""

import sys
from pathlib import Path
from typing import ClassVar

from ansible.errors import AnsibleParserError
from ansible.plugins.vars import BaseVarsPlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from memoryx_deploy.inputs.yamlcheck import yaml_problems

DOCUMENTATION = """
    name: memoryx_yaml
    short_description: Name the file of a YAML error in group_vars or host_vars
    description: Parses the group_vars and host_vars files next to the inventory and the playbook.
    options:
      stage:
        ini:
          - key: stage
            section: vars_memoryx_yaml
        env:
          - name: ANSIBLE_VARS_PLUGIN_STAGE
"""


class VarsModule(BaseVarsPlugin):  # type: ignore[misc]
    REQUIRES_ENABLED = True
    _checked: ClassVar[set[str]] = set()  # folders already read in this run

    def get_vars(self, loader: object, path: str, entities: object, cache: bool = True) -> dict[str, object]:
        super().get_vars(loader, path, entities)
        if path not in self._checked:
            self._checked.add(path)
            problems = yaml_problems([Path(path)])
            if problems:
                raise AnsibleParserError("memoryx_yaml: " + "; ".join(problems))
        return {}
