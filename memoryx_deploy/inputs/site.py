"""How this site deploys, beside the stack's data: where images come from, where the client
config goes, whether the end-to-end checks run, and which variable holds each secret.

The secrets themselves (registry password, API keys, the gateway's vault certificate and key)
never enter the stack, which every run may print: the stack names the variable holding each,
found and checked here, and a role reads the secret through that name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memoryx_deploy.inputs.fields import show
from memoryx_deploy.inputs.variables import CHOICES, DEFAULTS, SECRETS, VAULT_TLS
from memoryx_deploy.schema.stack import Deploy, Secrets


def read_deploy(problems: list[str], variables: Mapping[str, Any]) -> Deploy:
    """The site's settings, each its default (DEFAULTS) when absent. The words of
    memoryx_image_source and memoryx_verify are checked by choice_problems."""
    def setting(name: str) -> str:
        value = variables.get(name, DEFAULTS[name])
        if name in CHOICES:  # its words are checked by choice_problems
            return value if isinstance(value, str) else str(DEFAULTS[name])
        if not isinstance(value, str) or not value:
            problems.append(f"variable {name} must be a non-empty string, got {show(value)}")
            return str(DEFAULTS[name])
        return value

    return Deploy(image_source=setting("memoryx_image_source"),
                  image_archive_dir=setting("memoryx_image_archive_dir"),
                  client_config_dir=setting("memoryx_client_config_dir"),
                  verify=setting("memoryx_verify"))


def read_secrets(variables: Mapping[str, Any], tls_certificate: str) -> Secrets:
    """The variable that holds each secret: the first of SECRETS' that is set ("" when none),
    and the vault's certificate and key when the gateway's certificate comes from the vault."""
    def first(secret: str) -> str:
        return next((name for name in SECRETS[secret] if name in variables), "")

    certificate, key = VAULT_TLS if tls_certificate == "vault" else ("", "")
    return Secrets(registry_password=first("registry_password"),
                   gateway_api_keys=first("gateway_api_keys"),
                   gateway_tls_certificate=certificate, gateway_tls_key=key)


def vault_tls(variables: Mapping[str, Any]) -> bool:
    """Both halves of a vault certificate are set: the gateway's certificate comes from there
    unless memoryx_gateway.tls.certificate says otherwise."""
    return all(name in variables for name in VAULT_TLS)
