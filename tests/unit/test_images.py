"""What a host pulls, the daemon.json keys of the registry, and the digest each container runs
(memoryx_deploy/operate/images.py, issue 10), on what Docker's API returns."""

from __future__ import annotations

from typing import Any

from memoryx_deploy.operate.images import daemon_json, pull_plan, registry_auth, running_digests

OLD = "sha256:" + "1" * 64
NEW = "sha256:" + "2" * 64
VLLM = "registry.lan/vllm/vllm-openai:v0.19.1"
PINNED = f"registry.lan/library/nginx@{OLD}"
LOCAL: list[dict[str, Any]] = [
    {"Id": "sha256:aaa", "RepoTags": [VLLM], "RepoDigests": [f"registry.lan/vllm/vllm-openai@{OLD}"]},
    {"Id": "sha256:bbb", "RepoTags": [], "RepoDigests": [PINNED]},
]


def test_nothing_to_pull_when_every_tag_has_the_digest_the_host_has() -> None:
    assert pull_plan([VLLM, PINNED], LOCAL, {VLLM: OLD}) == []


def test_a_moved_tag_and_a_missing_image_are_pulled() -> None:
    missing = "registry.lan/ollama/ollama:0.13.0"
    assert pull_plan([VLLM, missing], LOCAL, {VLLM: NEW, missing: NEW}) == [
        {"name": VLLM, "reason": "moved", "local": OLD, "remote": NEW},
        {"name": missing, "reason": "missing", "local": "", "remote": NEW}]


def test_a_digest_never_moves_and_is_pulled_only_when_missing() -> None:
    other = f"registry.lan/library/nginx@{NEW}"
    assert pull_plan([PINNED, other], LOCAL, {PINNED: NEW}) == [
        {"name": other, "reason": "missing", "local": "", "remote": ""}]


def test_daemon_json_keeps_other_keys_and_owns_the_registry_ones() -> None:
    current = {"runtimes": {"nvidia": {"path": "nvidia-container-runtime"}},
               "registry-mirrors": ["https://old:5000"], "log-driver": "local"}
    mirror = {"mode": "mirror", "url": "https://mirror.lan:5000", "address": "mirror.lan:5000",
              "insecure": False}
    assert daemon_json(current, mirror) == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "log-driver": "local",
        "registry-mirrors": ["https://mirror.lan:5000"]}
    plain = {"mode": "private", "url": "http://r.lan:5000", "address": "r.lan:5000", "insecure": True}
    assert daemon_json(current, plain) == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "log-driver": "local",
        "insecure-registries": ["r.lan:5000"]}
    assert daemon_json(current, {"mode": "direct"}) == {
        "runtimes": {"nvidia": {"path": "nvidia-container-runtime"}}, "log-driver": "local"}


def test_registry_auth_only_with_a_login() -> None:
    assert registry_auth({"username": ""}, "") == {}
    assert registry_auth({"username": "u", "address": "r:5000"}, "p") == {
        "username": "u", "password": "p", "serveraddress": "r:5000"}


def test_running_digests_name_the_repository_each_container_came_from() -> None:
    containers = [
        {"Names": ["/vllm_a"], "Image": VLLM, "ImageID": "sha256:aaa"},
        {"Names": ["/nginx"], "Image": PINNED, "ImageID": "sha256:bbb"},
        {"Names": ["/loaded"], "Image": "memoryx-lab/x:lab", "ImageID": "sha256:ccc"},
    ]
    images = [*LOCAL, {"Id": "sha256:ccc", "RepoTags": ["memoryx-lab/x:lab"], "RepoDigests": []}]
    assert running_digests(containers, images) == [
        {"container": "loaded", "image": "memoryx-lab/x:lab", "digest": "", "image_id": "sha256:ccc"},
        {"container": "nginx", "image": PINNED, "digest": OLD, "image_id": "sha256:bbb"},
        {"container": "vllm_a", "image": VLLM, "digest": OLD, "image_id": "sha256:aaa"}]
