"""The memoryx_* variables: which exist, which hold data, and what a misspelt one meant.

The stack is read from Ansible's variables by name, so a variable that is misspelt, missing,
or set for some hosts only (inventory group_vars, host_vars) is caught here, by name, before
any host is touched.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from memoryx_deploy.inputs.fields import show

# Keys of `memoryx_config`; each is the variable `memoryx_<key>` of group_vars/all/memoryx.yml.
CONFIG_KEYS = (
    "gpu_hosts",
    "vllm_profiles",
    "vllm_env",
    "ollama",
    "gateway",
    "images",
    "gpu_utilization_limit",
    "vllm_overhead_gib",
    "vllm_models_dir",
    "ollama_models_dir",
    "containers",
    "engines",  # what each engine image runs on (inputs/engines.py)
    "extra_engines",  # a site's own engine images beside them (the lab's stand-ins)
    "registry",  # where the hosts pull images from (inputs/registry.py)
    "monitoring",  # Prometheus, exporters, alerts (inputs/monitoring.py)
)

PREFIX = "memoryx_"
# The project's folder: where the optional controller folders below default to.
PROJECT = Path(__file__).resolve().parents[2]
# Data the stack is built from (group_vars/all/memoryx.yml), by variable name.
STACK_VARIABLES = tuple(PREFIX + key for key in CONFIG_KEYS)
# Required data, each with what to write when it is missing (a memoryx.yml of an earlier release;
# README "Upgrading").
REQUIRED = {
    "memoryx_gpu_hosts": "the GPU hosts, keyed by inventory hostname: gpus, vllm_instances and "
                         "ollama_instances per GPU index",
    "memoryx_vllm_profiles": "what a vLLM instance runs: pool, model_path, served_model_name, "
                             "weights_gib, kv_cache_kib_per_token, args",
    "memoryx_ollama": "the embedding service: pool, model, embedding_dim, memory_gib, env",
    "memoryx_gateway": "the gateway: host, port, routes (auth, tls optional)",
    "memoryx_images": "the images, pinned: vllm, ollama, nginx",
    "memoryx_engines": "what each engine image of memoryx_images runs on, keyed by image reference "
                       "(engine, version, compute_capabilities, min_driver, min_cuda): copy the "
                       "entries of your images from this release's group_vars/all/memoryx.yml",
}
# Optional data, each with the value it takes when absent: the one place these defaults live
# (the stack's readers take them from here).
DEFAULTS: dict[str, Any] = {
    "memoryx_vllm_env": {},
    "memoryx_gpu_utilization_limit": 0.95,
    "memoryx_vllm_overhead_gib": 1.5,
    "memoryx_vllm_models_dir": "/data/projects/models",
    "memoryx_ollama_models_dir": "/data/ollama_models",
    "memoryx_containers": {},
    "memoryx_extra_engines": {},
    "memoryx_registry": {"mode": "direct"},
    "memoryx_monitoring": None,
    "memoryx_image_source": "pull",
    "memoryx_image_archive_dir": str(PROJECT / "images"),
    "memoryx_client_config_dir": str(PROJECT / "build" / "client"),
    "memoryx_verify": "",
    "memoryx_registry_password": "",
    "memoryx_gateway_api_keys": [],
}
# What a default means, where its value does not say it.
DEFAULT_NOTES = {
    "memoryx_containers": "each setting its own default (README \"The stack data\")",
    "memoryx_monitoring": "off: no Prometheus, exporters or alerts",
    "memoryx_verify": "each playbook's own (site.yml: changed; playbooks/verify.yml: always)",
    "memoryx_registry_password": "vault_memoryx_registry_password, when the vault sets it",
    "memoryx_gateway_api_keys": "vault_memoryx_gateway_api_keys, when the vault sets it",
}
# Secrets: each read from the first of these variables that is set (README "Security").
SECRETS = {
    "registry_password": ("memoryx_registry_password", "vault_memoryx_registry_password"),
    "gateway_api_keys": ("memoryx_gateway_api_keys", "vault_memoryx_gateway_api_keys"),
}
VAULT_TLS = ("vault_memoryx_gateway_tls_certificate", "vault_memoryx_gateway_tls_key")
# Other user-facing data: set in group_vars/all/memoryx.yml (or with -e), read by the model.
SETTINGS = ("memoryx_image_source", "memoryx_image_archive_dir", "memoryx_gateway_api_keys",
            "memoryx_client_config_dir", "memoryx_verify", "memoryx_registry_password")
# Variables an earlier release read and this one does not, each with what to do instead.
RETIRED: dict[str, str] = {}
# Computed by the project (group_vars/all/derived.yml, the preflight): never set them.
DERIVED = ("memoryx_stack", "memoryx_host", "memoryx_gateway_url", "memoryx_computed_stack",
           "memoryx_host_changed", "memoryx_verify_default", "memoryx_verify_now",
           "memoryx_gateway_keys", "memoryx_registry_secret")
# Prefixes of the playbooks' own working variables (play and task vars, registered results).
INTERNAL = ("memoryx_preflight_", "memoryx_restart", "memoryx_verify_", "memoryx_client", "memoryx_digest_",
            "memoryx_smoke_", "memoryx_driver_", "memoryx_monitoring_")
DATA = (*STACK_VARIABLES, *SETTINGS)
KNOWN = frozenset((*DATA, *DERIVED))


def readable_names(names: Iterable[str]) -> list[str]:
    """The variables whose values the preflight reads: the memoryx_* data (not the computed
    ones) and the vault's secrets the data refers to."""
    vault = {*(name for names_ in SECRETS.values() for name in names_), *VAULT_TLS}
    return sorted(name for name in names if name in DATA or name in vault
                  or (name.startswith(PREFIX) and name not in DERIVED and not name.startswith(INTERNAL)))


def unknown_problems(names: Iterable[str], where: str = "") -> list[str]:
    """A memoryx_* variable the project does not know is a typo: say which one was meant."""
    problems = []
    for name in sorted(set(names) - KNOWN):
        if not name.startswith(PREFIX) or name.startswith(INTERNAL):
            continue
        if name in RETIRED:
            problems.append(f"variable {name}{where} is no longer used: {RETIRED[name]}")
            continue
        close = difflib.get_close_matches(name, sorted(DATA), n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else f"the stack's variables are {', '.join(DATA)}"
        problems.append(f"variable {name}{where} is not a memoryx-deploy variable; {hint}")
    return problems


def config_from_variables(variables: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """memoryx_config (the keys of CONFIG_KEYS) from variables named memoryx_<key>. Every
    required variable that is missing is named in one problem, with what to write."""
    config = {key: variables[name] for key, name in zip(CONFIG_KEYS, STACK_VARIABLES, strict=True)
              if name in variables}
    missing = [name for name in REQUIRED if name not in variables]
    if missing:
        problems.append(
            f"group_vars/all/memoryx.yml lacks {len(missing)} variable{'s' if len(missing) > 1 else ''} "
            "this release needs (README \"Upgrading\"): "
            + "; ".join(f"{name}: {REQUIRED[name]}" for name in missing))
    return config


def defaults_taken(variables: Mapping[str, Any]) -> list[str]:
    """The optional variables the data leaves out, each with the default it takes."""
    return [f"{name}: {DEFAULT_NOTES.get(name) or json.dumps(value)}" for name, value in DEFAULTS.items()
            if name not in variables]


CHOICES = {"memoryx_image_source": ("pull", "archive"), "memoryx_verify": ("always", "changed", "never")}


def choice_problems(variables: Mapping[str, Any]) -> list[str]:
    """The settings that take one of a few words."""
    return [f"variable {name} must be one of {', '.join(choices)}, got {show(variables[name])}"
            for name, choices in CHOICES.items()
            if name in variables and variables[name] not in choices]
