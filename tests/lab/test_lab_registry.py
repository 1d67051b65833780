"""Images as production gets them (issue 10): the lab hosts pull production's names from the
lab's private registry (TLS by the lab CA, htpasswd login); a tag pushed again is a change for
exactly the containers that use it; a wrong password stops the deploy before any container;
the air-gapped archive path still deploys."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from labkit import EMBED_HOST, LLM_HOST, ROOT, PlaybookRun, containers, on_host, run_playbook, sh

from memoryx_deploy.operate.runner_events import plays_started

REGISTRY = "10.99.0.6:5000"
OLLAMA = f"{REGISTRY}/ollama/ollama:0.13.0"
PULL_TASK = "Pull the images that are missing or whose tag moved"
LOAD_TASK = "Load the archive into the Docker engine"
MOVED_TASK = "Report the containers a moved tag would recreate"



def task_items(run: PlaybookRun, task: str) -> list[tuple[str, str]]:
    """(host, item label) of every item of `task` that ended ok."""
    return sorted((r.host, r.item_label) for r in run.results(task, kinds=("runner_item_on_ok",)))


def changed_items(run: PlaybookRun, task: str) -> list[tuple[str, str]]:
    return sorted((r.host, r.item_label) for r in run.results(task, kinds=("runner_item_on_ok",))
                  if r.changed)


def test_a_fresh_deploy_pulls_every_image_from_the_registry(
        deploy_runs: dict[str, PlaybookRun]) -> None:
    first = deploy_runs["first"]
    pulled = [(host, label.split(" (")[0]) for host, label in changed_items(first, PULL_TASK)]
    assert pulled == [("mx-embed-01", f"{REGISTRY}/library/nginx:1.28.0"), ("mx-embed-01", OLLAMA),
                      ("mx-llm-01", f"{REGISTRY}/vllm/vllm-openai:v0.19.1")]
    assert not [r for r in first.results() if r.task.startswith(LOAD_TASK)]  # the archive path did not run
    assert changed_items(deploy_runs["second"], PULL_TASK) == []
    # what runs came from the registry: its image carries the registry's digest
    digests = on_host(LLM_HOST, "docker image inspect -f '{{json .RepoDigests}}' "
                                f"{REGISTRY}/vllm/vllm-openai:v0.19.1").stdout
    assert json.loads(digests)[0].startswith(f"{REGISTRY}/vllm/vllm-openai@sha256:")


def push_new_build(tmp_path: Path) -> None:
    """A new build of the Ollama image pushed under the same tag, as a registry's tag moves."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Dockerfile").write_text(
        f"FROM memoryx-lab/ollama-sim:lab\nLABEL org.memoryx.lab.rebuild={uuid.uuid4().hex}\n")
    sh("env", "DOCKER_BUILDKIT=0", "docker", "build", "-q", "-t", OLLAMA, str(tmp_path))
    sh("env", f"DOCKER_CONFIG={ROOT}/lab/build/docker", "docker", "push", "-q", OLLAMA)


def test_a_tag_pushed_again_changes_exactly_its_containers(deployed: None, tmp_path: Path) -> None:
    push_new_build(tmp_path / "build")
    before = containers()
    check = run_playbook("site.yml", tmp_path / "check", check=True)
    assert check.rc == 0, check.failures()
    assert containers() == before
    assert [label for _, label in changed_items(check, MOVED_TASK)] == [
        "/ollama_bge_gpu0", "/ollama_bge_gpu1"]
    assert [(host, label.split(" (")[0]) for host, label in changed_items(check, PULL_TASK)] == [
        ("mx-embed-01", OLLAMA)]

    real = run_playbook("site.yml", tmp_path / "real")
    assert real.rc == 0, real.failures()
    after = containers()
    assert sorted(name for name in before if after.get(name) != before[name]) == [
        "ollama_bge_gpu0", "ollama_bge_gpu1"]


def test_a_wrong_registry_password_stops_before_any_container(deployed: None, tmp_path: Path) -> None:
    secret = f"wrong-{uuid.uuid4().hex}"
    before = containers()
    run = run_playbook("site.yml", tmp_path, extravars={"vault_memoryx_registry_password": secret})
    assert run.rc != 0
    message = " ".join(run.failures())
    assert f"registry {REGISTRY} refused the login of user 'memoryx-lab'" in message
    assert secret not in json.dumps(run.events)
    assert not [play for play in plays_started(run.events) if play.startswith("Services")]
    assert containers() == before


@pytest.fixture
def restored(tmp_path: Path) -> Iterator[None]:
    """The lab back on its registry images after a test that deployed otherwise."""
    yield
    run = run_playbook("site.yml", tmp_path / "restore")
    assert run.rc == 0, run.failures()


ARCHIVES = {"memoryx_image_source": "archive", "memoryx_registry": {"mode": "direct"},
            "memoryx_images": {"vllm": "memoryx-lab/vllm-sim:lab",
                               "ollama": "memoryx-lab/ollama-sim:lab",
                               "nginx": "memoryx-lab/nginx:bookworm"}}


def test_the_archive_path_still_deploys(deployed: None, restored: None, tmp_path: Path) -> None:
    run = run_playbook("site.yml", tmp_path, extravars=ARCHIVES)
    assert run.rc == 0, run.failures()
    # the load task is named after its image: "Load the archive into the Docker engine, IMAGE"
    loaded = sorted((r.host, r.task.split(", ", 1)[1]) for r in run.results()
                    if r.task.startswith(LOAD_TASK + ", ") and r.changed)
    assert loaded == [("mx-embed-01", "memoryx-lab/nginx:bookworm"),
                      ("mx-embed-01", "memoryx-lab/ollama-sim:lab"),
                      ("mx-llm-01", "memoryx-lab/vllm-sim:lab")]
    assert task_items(run, PULL_TASK) == []
    for host in (LLM_HOST, EMBED_HOST):
        names = on_host(host, "docker ps --format '{{.Names}} {{.Status}}'").stdout
        assert "(unhealthy)" not in names and names.strip()
