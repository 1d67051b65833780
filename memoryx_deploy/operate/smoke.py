"""The smoke runs before an image replaces anything on a GPU (issue 8, part 3): which image on
which GPU of a host, and the exact command (memoryx_deploy/data/smoke.json) that proves a kernel
of that image runs on that GPU. The playbooks run them; the lab simulators answer the same
command against the stand-in driver."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypedDict

from memoryx_deploy.schema.stack import Placement, Stack

SMOKE_FILE = Path(__file__).resolve().parents[1] / "data" / "smoke.json"


class SmokeRun(TypedDict):
    host: str
    gpu: int
    gpu_name: str
    compute_capability: str
    image: str
    engine: str  # vllm | ollama
    instances: list[str]
    entrypoint: str
    args: list[str]
    expect: str  # printed by a run that passed (it also exits 0)
    docker_argv: list[str]  # the whole command, for ansible.builtin.command's argv


@cache
def smoke_commands() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SMOKE_FILE.read_text(encoding="utf-8"))
    return data


def smoke_runs(stack: Stack, host: str) -> list[SmokeRun]:
    """One run per (image, GPU) that `host`'s instances use, in GPU order."""
    runs: dict[tuple[str, int], SmokeRun] = {}
    kinds: list[tuple[str, Sequence[Placement]]] = [
        ("vllm", stack["vllm_instances"]), ("ollama", stack["ollama_instances"])]
    declared = {gpu["index"]: gpu for gpu in stack["hosts"][host]["gpus"]} if host in stack["hosts"] else {}
    for engine, instances in kinds:
        command = smoke_commands()[engine]
        for instance in instances:
            if instance["host"] != host:
                continue
            image = instance["container"]["image"]  # the reference the host pulled
            key = (image, instance["gpu"])
            if key in runs:
                runs[key]["instances"].append(instance["name"])
                continue
            gpu = declared.get(instance["gpu"])
            runs[key] = SmokeRun(
                host=host, gpu=instance["gpu"], gpu_name=gpu["name"] if gpu else "",
                compute_capability=gpu["compute_capability"] if gpu else "", image=image,
                engine=engine, instances=[instance["name"]], entrypoint=command["entrypoint"],
                args=list(command["args"]), expect=command["expect"],
                # --pull never: the image was made present by role container_image; a smoke
                # run never reaches for a registry.
                docker_argv=["docker", "run", "--rm", "--pull", "never",
                             "--gpus", f"device={instance['gpu']}",
                             "--entrypoint", command["entrypoint"], image,
                             *command["args"]])
    return sorted(runs.values(), key=lambda run: (run["gpu"], run["image"]))


def smoke_passed(run: SmokeRun, returncode: int, output: str) -> bool:
    """The run passed: exit 0 and the expected line printed."""
    return returncode == 0 and run["expect"] in output


def smoke_todo(runs: Sequence[SmokeRun], containers: Sequence[Mapping[str, Any]],
               images: Sequence[Mapping[str, Any]], instances: Sequence[str] | None = None
               ) -> list[SmokeRun]:
    """The runs still to make: an (image, GPU) pair that no running managed container already
    runs (the same image ID on the same GPU). `containers`: Docker's container list (Labels,
    ImageID, State); `images`: Docker's image inspect of the runs' images (Id, RepoTags,
    RepoDigests); `instances`: consider only the runs of these instances (a rolling restart)."""
    ids: dict[str, str] = {}
    for image in images:
        for name in [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]:
            ids[str(name)] = str(image.get("Id", ""))
    running = {(str((c.get("Labels") or {}).get("memoryx.gpu", "")), str(c.get("ImageID", "")))
               for c in containers if c.get("State") == "running"}
    wanted = [run for run in runs
              if instances is None or set(run["instances"]) & set(instances)]
    return [run for run in wanted
            if (str(run["gpu"]), ids.get(run["image"], "missing")) not in running]


def smoke_failures(results: Sequence[Mapping[str, Any]], lines: int = 20) -> list[str]:
    """Why each failed smoke run failed, quoting the command's own last lines. `results`: the
    registered results of running each run's docker_argv (Ansible's loop results)."""
    failures = []
    for result in results:
        if result.get("skipped"):
            continue
        run: SmokeRun = result["item"]
        returncode = int(result.get("rc", -1))
        output = "\n".join(str(result.get(key) or "") for key in ("stdout", "stderr", "msg"))
        if smoke_passed(run, returncode, output):
            continue
        quoted = "\n".join(output.strip().splitlines()[-lines:])
        failures.append(
            f"smoke run of image {run['image']} on {run['host']} GPU {run['gpu']} "
            f"({run['gpu_name']}, compute capability {run['compute_capability']}) for "
            f"{', '.join(run['instances'])} failed (exit {returncode}, no {run['expect']!r}); "
            f"nothing was replaced, every running instance keeps serving. Its output:\n{quoted}")
    return failures
