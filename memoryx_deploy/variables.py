"""The memoryx_* variables: which exist, which hold data, and what a misspelt one meant.

The stack is read from Ansible's variables by name, so a variable that is misspelt, missing,
or set for some hosts only (inventory group_vars, host_vars) is caught here, by name, before
any host is touched.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from memoryx_deploy.fields import show
from memoryx_deploy.model import CONFIG_KEYS

PREFIX = "memoryx_"
# Data the stack is built from (group_vars/all/memoryx.yml), by variable name.
STACK_VARIABLES = tuple(PREFIX + key for key in CONFIG_KEYS)
# Optional stack data: absent means its default.
OPTIONAL = frozenset({PREFIX + "containers", PREFIX + "registry", PREFIX + "monitoring"})
# Other user-facing data: set in group_vars/all/memoryx.yml, read by the playbooks.
SETTINGS = ("memoryx_image_source", "memoryx_image_archive_dir", "memoryx_gateway_api_keys",
            "memoryx_client_config_dir", "memoryx_verify", "memoryx_registry_password")
# Computed by the project (group_vars/all/derived.yml, the preflight): never set them.
DERIVED = ("memoryx_stack", "memoryx_host", "memoryx_gateway_url", "memoryx_computed_stack",
           "memoryx_host_changed", "memoryx_verify_default",
           "memoryx_verify_now")
# Prefixes of the playbooks' own working variables (play and task vars, registered results).
INTERNAL = ("memoryx_preflight_", "memoryx_restart", "memoryx_verify_", "memoryx_client", "memoryx_digest_",
            "memoryx_smoke_", "memoryx_driver_", "memoryx_monitoring_")
DATA = (*STACK_VARIABLES, *SETTINGS)
KNOWN = frozenset((*DATA, *DERIVED))


def readable_names(names: Iterable[str]) -> list[str]:
    """The memoryx_* variables whose values the preflight reads: all but the computed ones."""
    return sorted(name for name in names if name.startswith(PREFIX) and name not in DERIVED
                  and not name.startswith(INTERNAL))


def unknown_problems(names: Iterable[str], where: str = "") -> list[str]:
    """A memoryx_* variable the project does not know is a typo: say which one was meant."""
    problems = []
    for name in sorted(set(names) - KNOWN):
        if not name.startswith(PREFIX) or name.startswith(INTERNAL):
            continue
        close = difflib.get_close_matches(name, sorted(DATA), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else f"the stack's variables are {', '.join(DATA)}"
        problems.append(f"variable {name}{where} is not a memoryx-deploy variable; {hint}")
    return problems


def config_from_variables(variables: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """memoryx_config (the keys of CONFIG_KEYS) from variables named memoryx_<key>."""
    config: dict[str, Any] = {}
    for key, name in zip(CONFIG_KEYS, STACK_VARIABLES, strict=True):
        if name in variables:
            config[key] = variables[name]
        elif name not in OPTIONAL:
            problems.append(f"variable {name} is not defined: the stack needs it "
                            "(group_vars/all/memoryx.yml defines every stack variable)")
    return config


CHOICES = {"memoryx_image_source": ("pull", "archive"), "memoryx_verify": ("always", "changed", "never")}


def choice_problems(variables: Mapping[str, Any]) -> list[str]:
    """The settings that take one of a few words."""
    return [f"variable {name} must be one of {', '.join(choices)}, got {show(variables[name])}"
            for name, choices in CHOICES.items()
            if name in variables and variables[name] not in choices]
