"""The gateway's security data (issue 9): authentication is on unless the data says "off"
in so many words, and a key is named in messages, never shown."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from memoryx_deploy import StackError, build_stack
from memoryx_deploy.__main__ import load_config

ROOT = Path(__file__).resolve().parents[2]
ADDRESSES = {"mx-llm-01": "192.168.31.10", "mx-embed-01": "192.168.31.65"}
KEY = "sk-" + "0123456789abcdef" * 4


@pytest.fixture
def config() -> dict[str, Any]:
    return copy.deepcopy(load_config([ROOT / "group_vars" / "all" / "memoryx.yml"]))


def gateway_problems(config: dict[str, Any]) -> list[str]:
    try:
        build_stack(config, ADDRESSES)
    except StackError as error:
        return [p for p in error.problems if p.startswith("gateway")]
    return []


def test_the_data_asks_for_authentication(config: dict[str, Any]) -> None:
    assert config["gateway"]["auth"] == "required"


def test_required_without_keys_is_refused(config: dict[str, Any]) -> None:
    config["gateway"]["api_keys"] = []
    assert gateway_problems(config) == [
        "gateway: auth is 'required' but api_keys is empty: put the keys in Vault "
        "(vault_memoryx_gateway_api_keys: [{name: ..., key: ...}]) or set "
        'memoryx_gateway.auth: "off" to run the gateway without authentication']


def test_off_in_so_many_words_runs_without_keys(config: dict[str, Any]) -> None:
    config["gateway"]["auth"] = "off"
    config["gateway"]["api_keys"] = []
    assert gateway_problems(config) == []


@pytest.mark.parametrize("auth", [False, True, "no", "OFF", ""])
def test_anything_but_required_or_off_is_refused(config: dict[str, Any], auth: object) -> None:
    config["gateway"]["auth"] = auth
    config["gateway"]["api_keys"] = [{"name": "memoryx", "key": KEY}]
    [problem] = gateway_problems(config)
    assert problem.startswith("gateway: auth must be 'required' or 'off'")


def test_named_printable_keys_pass(config: dict[str, Any]) -> None:
    config["gateway"]["api_keys"] = [
        {"name": "memoryx", "key": KEY},
        {"name": "batch.jobs", "key": "Kx9!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" * 20},
    ]
    assert gateway_problems(config) == []


def test_bad_keys_are_named_never_shown(config: dict[str, Any]) -> None:
    secret = "has a space in it, sadly"
    config["gateway"]["api_keys"] = [
        {"name": "memoryx", "key": secret},
        {"name": "memoryx", "key": KEY},
        {"name": "bad name!", "key": KEY + "x"},
        {"key": KEY + "y"},
        "sk-plain-string-key-without-a-name",
        {"name": "copy", "key": KEY},
    ]
    found = gateway_problems(config)
    assert found == [
        "gateway api_keys 'memoryx': key must be 16 to 1024 printable ASCII characters "
        "without spaces (the key is not shown)",
        "gateway api_keys 'memoryx': the name is listed twice",
        "gateway api_keys[2]: name must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        "gateway api_keys[3]: must be a mapping with name and key, and optionally models, "
        "concurrency and rate",
        "gateway api_keys[4]: must be a mapping with name and key, and optionally models, "
        "concurrency and rate",
        "gateway api_keys: two entries hold the same key",
    ]
    assert not any(secret in p or KEY in p or "sk-plain" in p for p in found)


def test_a_key_list_left_to_ansible_is_not_judged_by_the_cli(config: dict[str, Any]) -> None:
    config["gateway"]["api_keys"] = "{{ memoryx_gateway_api_keys }}"
    assert gateway_problems(config) == []


def test_a_key_policy_within_the_stack_passes(config: dict[str, Any]) -> None:
    config["gateway"]["api_keys"] = [
        {"name": "memoryx", "key": KEY},
        {"name": "embedder", "key": KEY + "e", "models": ["bge-m3"], "concurrency": 8, "rate": "600r/m"},
    ]
    assert gateway_problems(config) == []


def test_a_bad_key_policy_is_refused_naming_the_key(config: dict[str, Any]) -> None:
    config["gateway"]["api_keys"] = [
        {"name": "a", "key": KEY + "a", "models": []},
        {"name": "b", "key": KEY + "b", "concurrency": 0, "rate": "10/s"},
        {"name": "c", "key": KEY + "c", "concurrency": True, "rate": "0r/s"},
        {"name": "d", "key": KEY + "d", "scopes": ["bge-m3"]},
    ]
    assert gateway_problems(config) == [
        "gateway api_keys 'a': models must be a non-empty list of served model names (leave it "
        "out to allow every model), got a list",
        "gateway api_keys 'b': concurrency must be a whole number of requests at once, at least 1, "
        "got 0",
        "gateway api_keys 'b': rate must be requests per second or minute, as nginx writes it "
        "(e.g. 10r/s, 600r/m), got '10/s'",
        "gateway api_keys 'c': concurrency must be a whole number of requests at once, at least 1, "
        "got true",
        "gateway api_keys 'c': rate must be requests per second or minute, as nginx writes it "
        "(e.g. 10r/s, 600r/m), got '0r/s'",
        "gateway api_keys 'd': must be a mapping with name and key, and optionally models, "
        "concurrency and rate",
    ]


def test_a_key_for_a_model_nobody_serves_is_refused(config: dict[str, Any]) -> None:
    config["gateway"]["api_keys"] = [{"name": "chat", "key": KEY, "models": ["llama3.1-8b", "gpt-4o"]}]
    assert gateway_problems(config) == [
        "gateway api_keys 'chat': model 'gpt-4o' is not served (served: bge-m3, llama3.1-8b, "
        "qwen2.5-14b)"]


def test_trusted_clients_pass_with_their_networks_in_cidr_form(config: dict[str, Any]) -> None:
    config["gateway"]["trusted_clients"] = [
        {"name": "rag", "networks": ["192.168.31.40", "10.1.0.0/16"], "models": ["bge-m3"]}]
    stack = build_stack(config, ADDRESSES)
    assert stack["gateway"]["trusted_clients"] == [
        {"name": "rag", "networks": ["192.168.31.40/32", "10.1.0.0/16"], "models": ["bge-m3"]}]


def test_bad_trusted_clients_are_refused_by_name(config: dict[str, Any]) -> None:
    config["gateway"]["trusted_clients"] = [
        {"name": "all", "networks": ["0.0.0.0/0"]},
        {"name": "typo", "networks": ["10.0.0.300"], "rate": "fast"},
        {"name": "twice", "networks": ["10.1.0.0/16"]},
        {"name": "again", "networks": ["10.1.0.0/16"]},
        {"name": "keyed", "networks": ["10.2.0.1"], "key": KEY},
        {"name": "empty", "networks": []},
    ]
    assert gateway_problems(config) == [
        "gateway trusted_clients 'all': 0.0.0.0/0 is every address: that is auth \"off\"; name the "
        "clients' networks",
        "gateway trusted_clients 'typo': '10.0.0.300' is not an address or a network (CIDR)",
        "gateway trusted_clients 'typo': rate must be requests per second or minute, as nginx "
        "writes it (e.g. 10r/s, 600r/m), got 'fast'",
        "gateway trusted_clients 'again': 10.1.0.0/16 is already trusted by "
        "gateway trusted_clients 'twice'",
        "gateway trusted_clients 'keyed': must be a mapping with name and networks, and optionally "
        "models, concurrency and rate",
        "gateway trusted_clients 'empty': networks must be a non-empty list of addresses or "
        "networks (CIDR), got a list",
    ]


def test_trusted_clients_need_authentication_and_served_models(config: dict[str, Any]) -> None:
    config["gateway"]["trusted_clients"] = [{"name": "rag", "networks": ["10.0.0.0/8"], "models": ["bge-m4"]}]
    assert gateway_problems(config) == [
        "gateway trusted_clients 'rag': model 'bge-m4' is not served (served: bge-m3, llama3.1-8b, "
        "qwen2.5-14b)"]
    config["gateway"]["auth"] = "off"
    assert gateway_problems(config)[0] == (
        "gateway: trusted_clients need auth 'required' (with auth off every client calls without a "
        "key already)")
