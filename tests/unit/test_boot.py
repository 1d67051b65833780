"""roles/docker_containers/files/memoryx-boot: waves at boot, reverse at shutdown, against a
stand-in `docker` that models what the script reads (running, health) and what vLLM does when
two instances of one GPU load at once (the second one dies)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "roles/docker_containers/files/memoryx-boot"
NS = 1_000_000_000


def load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("memoryx_boot", str(SCRIPT))
    spec = importlib.util.spec_from_loader("memoryx_boot", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["memoryx_boot"] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


boot = load()


@dataclass
class Container:
    gpu: int
    running: bool = False
    health: str = ""  # "" (no healthcheck), starting, healthy, unhealthy
    loading: int = 0  # polls until healthy
    healthcheck: bool = True
    deaths: int = 0


@dataclass
class FakeDocker:
    """Containers of one host; a container of a GPU whose neighbour is still loading dies at
    start (vLLM: not enough free memory), as a real co-located start fails."""

    containers: dict[str, Container]
    load_polls: int = 2
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        verb, names = argv[0], [a for a in argv[1:] if not a.startswith("--") and not a.isdigit()]
        if verb == "inspect":
            c = self.containers.get(names[0])
            if c is None:
                return subprocess.CompletedProcess(argv, 1, "", "No such object")
            return subprocess.CompletedProcess(argv, 0, json.dumps([self.inspect(c)]), "")
        for name in names:
            c = self.containers[name]
            if verb == "start":
                self.start(c)
            elif verb == "stop":
                c.running, c.health = False, ""
        return subprocess.CompletedProcess(argv, 0, "", "")

    def start(self, c: Container) -> None:
        if any(o.running and o.health == "starting" and o.gpu == c.gpu for o in self.containers.values()):
            c.deaths += 1  # its share is not free: it exits at once
            return
        c.running, c.health, c.loading = True, "starting" if c.healthcheck else "", self.load_polls

    def inspect(self, c: Container) -> dict[str, Any]:
        if c.running and c.health == "starting":
            c.loading -= 1
            if c.loading <= 0:
                c.health = "healthy"
        check = ({"Test": ["CMD", "true"], "Interval": NS, "StartPeriod": 5 * NS, "Retries": 3}
                 if c.healthcheck else None)
        return {"State": {"Running": c.running, "Health": {"Status": c.health} if c.healthcheck else None},
                "Config": {"Healthcheck": check, "StopTimeout": 30}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


WAVES = [["a0", "b0", "c0"], ["a1", "b1"], ["gw_router", "gw"]]


def host() -> FakeDocker:
    return FakeDocker({"a0": Container(0), "a1": Container(0), "b0": Container(1), "b1": Container(1),
                       "c0": Container(2), "gw_router": Container(-1, healthcheck=False),
                       "gw": Container(-2, healthcheck=False)})


def run_start(docker: FakeDocker, waves: list[list[str]] = WAVES) -> list[str]:
    clock = Clock()
    failed: list[str] = boot.start(waves, run=docker, clock=clock, sleep=clock.sleep, poll=1.0)
    return failed


def test_a_boot_starts_each_wave_once_the_one_before_is_up() -> None:
    docker = host()
    assert run_start(docker) == []
    starts = [call[1:] for call in docker.calls if call[0] == "start"]
    assert starts == [["a0", "b0", "c0"], ["a1", "b1"], ["gw_router", "gw"]]
    assert all(c.running and c.deaths == 0 for c in docker.containers.values())


def test_starting_everything_at_once_is_what_kills_the_second_instance() -> None:
    """The stand-in's own check: without waves, a GPU's second instance dies."""
    docker = host()
    for name in ("a0", "a1"):
        docker.start(docker.containers[name])
    assert docker.containers["a1"].deaths == 1


def test_a_running_host_is_left_alone() -> None:
    docker = host()
    run_start(docker)
    docker.calls.clear()
    assert run_start(docker) == []
    assert [call for call in docker.calls if call[0] != "inspect"] == []


def test_after_a_hard_reset_later_waves_wait_for_their_turn() -> None:
    """Docker started everything itself: later-wave containers still loading are stopped first."""
    docker = host()
    for name in ("a0", "b0", "c0", "gw_router"):
        docker.start(docker.containers[name])
    b1 = docker.containers["b1"]
    b1.running, b1.health, b1.loading = True, "starting", 5  # raced b0
    assert run_start(docker) == []
    assert docker.calls[[c[0] for c in docker.calls].index("stop")] == ["stop", "b1"]
    assert all(c.running for c in docker.containers.values())


def test_a_container_that_never_comes_up_does_not_hold_the_boot() -> None:
    docker = host()
    docker.load_polls = 10_000  # a0 never becomes healthy
    docker.containers["b0"].loading = 0
    failed = run_start(docker, [["a0"], ["gw"]])
    assert failed == ["a0"]
    assert docker.containers["gw"].running


def test_a_missing_container_is_named_and_skipped() -> None:
    docker = host()
    assert run_start(docker, [["a0", "nope"], ["a1"]]) == ["nope"]
    assert docker.containers["a1"].running


def test_a_container_with_a_warm_up_is_up_once_it_answers() -> None:
    """An Ollama instance counts as up once its model loaded: the next wave waits for that."""
    docker = host()
    sent: list[tuple[str, dict[str, Any]]] = []

    def send(url: str, body: dict[str, Any]) -> bool:
        sent.append((url, body))
        return len(sent) >= 3  # the model loads on the third try

    clock = Clock()
    warm = {"a0": {"url": "http://127.0.0.1:11434/api/embed", "body": {"model": "bge-m3", "keep_alive": -1}}}
    assert boot.start([["a0"], ["gw"]], run=docker, clock=clock, sleep=clock.sleep, warm=warm, send=send) == []
    assert sent == [(warm["a0"]["url"], warm["a0"]["body"])] * 3
    starts = [call for call in docker.calls if call[0] == "start"]
    assert starts == [["start", "a0"], ["start", "gw"]]


def test_shutdown_stops_the_waves_in_reverse() -> None:
    docker = host()
    run_start(docker)
    docker.calls.clear()
    boot.stop(WAVES, run=docker)
    stops = [call for call in docker.calls if call[0] == "stop"]
    assert stops == [["stop", "--time", "30", "gw_router", "gw"], ["stop", "--time", "30", "a1", "b1"],
                     ["stop", "--time", "30", "a0", "b0", "c0"]]
    assert not any(c.running for c in docker.containers.values())


def test_the_wait_follows_the_healthcheck() -> None:
    check = {"Test": ["CMD", "x"], "Interval": 10 * NS, "StartPeriod": 900 * NS, "Retries": 3}
    state = boot.state_of("x", {"State": {"Running": True, "Health": {"Status": "starting"}},
                                "Config": {"Healthcheck": check, "StopTimeout": 120}})
    assert (state.wait_seconds, state.stop_timeout, state.up) == (900 + 40 + boot.MARGIN_SECONDS, 120, False)
    plain = boot.state_of("y", {"State": {"Running": True}, "Config": {}})
    assert (plain.up, plain.wait_seconds) == (True, boot.MARGIN_SECONDS)


def test_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert boot.main(["reboot", str(tmp_path / "plan.json")]) == 2
    assert "usage: memoryx-boot start|stop PLAN.json" in capsys.readouterr().err
