"""Container records: everything Docker needs to run one instance, computed once, here.

An instance's record is what `roles/docker_containers` hands to `community.docker.docker_container`
as it is: image, command, environment, published ports, mounts, the GPU it is pinned to, labels,
healthcheck, restart policy, stop timeout and log rotation. The engines' own facts (the port an
engine listens on inside its container, where its models are mounted) live in this module and
nowhere else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memoryx_deploy.inputs.fields import Reader, is_int, show
from memoryx_deploy.inputs.vllm_args import MODEL_DIR
from memoryx_deploy.schema.stack import Container, Healthcheck, LogConfig

# vLLM's OpenAI server listens on 8000 inside its container (the image's default).
VLLM_CONTAINER_PORT = 8000
# Ollama listens on 11434 inside its container and keeps its models under /root/.ollama.
OLLAMA_CONTAINER_PORT = 11434
OLLAMA_CONTAINER_MODELS = "/root/.ollama"
LOOPBACK = "127.0.0.1"
# Docker's "10s"/"15m"/"1h30m" durations.
DURATION = re.compile(r"^([0-9]+(ms|s|m|h))+$")
CONTAINER_KEYS = ("restart_policy", "vllm_stop_timeout", "vllm_healthcheck_interval",
                  "vllm_healthcheck_start_period", "ollama_stop_timeout",
                  "log_driver", "log_options", "access_log_options")
RESTART_POLICIES = ("unless-stopped", "on-failure", "no")
# Log drivers that keep the log on the host, rotated by max-size and max-file: the bound is
# ours to set and to check (`docker inspect`, the status view). syslog, journald, fluentd and
# the like hand the log to another system whose own limits bound it (or not).
LOG_DRIVERS = ("json-file", "local")
# The two options both drivers take. Only these, always both: the bound is max-size x max-file,
# and with fixed keys community.docker's comparison of log_options (extra keys allowed, so a
# daemon.json log-opts merged in by Docker never recreates) is exact for what the data says.
LOG_OPTIONS = ("max-file", "max-size")
# A Docker size as Docker's docs write it: a positive whole number of k, m or g (1024-based).
DOCKER_SIZE = re.compile(r"^[1-9][0-9]*[kmg]$")
DEFAULT_LOG_OPTIONS = {"max-size": "50m", "max-file": "5"}
# The gateway router's JSON access log: one line per request, the big one.
DEFAULT_ACCESS_LOG_OPTIONS = {"max-size": "100m", "max-file": "10"}


@dataclass(frozen=True)
class ContainerSettings:
    """`memoryx_containers`: how every managed container runs."""

    # not "always": Docker would start every container at once when it starts (memoryx-boot)
    restart_policy: str = "unless-stopped"
    vllm_stop_timeout: int = 120
    vllm_healthcheck_interval: str = "10s"
    vllm_healthcheck_start_period: str = "15m"
    ollama_stop_timeout: int = 30
    log_driver: str = "json-file"
    log_options: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LOG_OPTIONS))
    # merged over log_options for the gateway router's container (its JSON access log)
    access_log_options: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_ACCESS_LOG_OPTIONS))

    def log(self) -> LogConfig:
        """Every managed container's log but the gateway router's."""
        return LogConfig(driver=self.log_driver, options=dict(self.log_options))

    def access_log(self) -> LogConfig:
        """The gateway router's: its JSON access log goes to Docker's log."""
        return LogConfig(driver=self.log_driver,
                         options={**self.log_options, **self.access_log_options})


def read_container_settings(problems: list[str], data: object) -> ContainerSettings:
    reader = Reader(problems, "containers", data, CONTAINER_KEYS)
    defaults = ContainerSettings()
    policy = reader.string("restart_policy", default=defaults.restart_policy)
    if policy == "always":
        reader.fail("restart_policy 'always' makes Docker start every container at once when it "
                    "starts (at boot), and two vLLM instances that share a GPU fail so; use "
                    "unless-stopped (the default): Docker still restarts a container that dies, and "
                    "memoryx-boot starts them in the deploy's waves at boot")
    elif policy and policy not in RESTART_POLICIES:
        reader.fail(f"restart_policy must be one of {', '.join(RESTART_POLICIES)}, got {policy!r}")
    return ContainerSettings(
        restart_policy=policy,
        vllm_stop_timeout=reader.integer("vllm_stop_timeout", low=1,
                                         default=defaults.vllm_stop_timeout),
        vllm_healthcheck_interval=_duration(reader, "vllm_healthcheck_interval",
                                            defaults.vllm_healthcheck_interval),
        vllm_healthcheck_start_period=_duration(reader, "vllm_healthcheck_start_period",
                                                defaults.vllm_healthcheck_start_period),
        ollama_stop_timeout=reader.integer("ollama_stop_timeout", low=1,
                                           default=defaults.ollama_stop_timeout),
        log_driver=_log_driver(reader, defaults.log_driver),
        log_options=_log_options(reader, "log_options", defaults.log_options, complete=True),
        access_log_options=_log_options(reader, "access_log_options",
                                        defaults.access_log_options, complete=False),
    )


def _log_driver(reader: Reader, default: str) -> str:
    driver = reader.string("log_driver", default=default)
    if driver and driver not in LOG_DRIVERS:
        reader.fail(f"log_driver must be one of {', '.join(LOG_DRIVERS)} (a copy on the host "
                    "that max-size and max-file bound; other drivers leave the bound to another "
                    f"system), got {driver!r}")
    return driver


def _log_options(reader: Reader, key: str, default: dict[str, str], *,
                 complete: bool) -> dict[str, str]:
    """Docker's option map, values as the strings Docker stores (max-file 5 -> "5").
    `complete`: both options must be set (access_log_options may override one)."""
    data = reader.mapping(key, default=default)
    options: dict[str, str] = {}
    for name, value in data.items():
        if name not in LOG_OPTIONS:
            reader.fail(f"{key}: unknown option {show(name)} (allowed: {', '.join(LOG_OPTIONS)})")
        elif name == "max-size":
            if isinstance(value, str) and DOCKER_SIZE.match(value):
                options[name] = value
            else:
                reader.fail(f"{key}.max-size must be a Docker size, a whole number of k, m or g "
                            f"such as 10m or 1g, got {show(value)}")
        elif (is_int(value) and value >= 1) or (
                isinstance(value, str) and value.isascii() and value.isdigit() and int(value) >= 1):
            options[name] = str(int(value))
        else:
            reader.fail(f"{key}.max-file must be a whole number of files, at least 1, "
                        f"got {show(value)}")
    missing = [name for name in ("max-size", "max-file") if name not in data]
    if complete and missing and isinstance(reader.raw(key, default), Mapping):
        reader.fail(f"{key} must set max-size and max-file (the log's bound is their product), "
                    f"missing {' and '.join(missing)}")
    return options


def _duration(reader: Reader, key: str, default: str) -> str:
    value = reader.string(key, default=default)
    if value and not DURATION.match(value):
        reader.fail(f"{key} must be a duration such as 10s, 15m or 1h30m, got {value!r}")
    return value


# The gateway's two containers (roles/nginx_unified), in the order they start.
GATEWAY_CONTAINERS = {"router": "memoryx_gateway_router", "client": "memoryx_gateway"}


def container_name(kind: str, instance: str) -> str:
    """vllm_llama_gpu0_0: the container of instance llama-gpu0-0."""
    return f"{kind}_{instance.replace('-', '_')}"


def published(bind_address: str, port: int, container_port: int) -> list[str]:
    """The host port on the address the gateway uses, and on loopback for checks on the host."""
    addresses = [bind_address] if bind_address == LOOPBACK else [bind_address, LOOPBACK]
    return [f"{address}:{port}:{container_port}" for address in addresses]


def gpu_request(gpu: int) -> list[dict[str, Any]]:
    # Docker stores count 0 beside explicit device IDs; say so, or every run recreates.
    return [{"driver": "nvidia", "count": 0, "device_ids": [str(gpu)],
             "capabilities": [["gpu"]]}]


def labels(role: str, name: str, pool: str, gpu: int) -> dict[str, str]:
    return {"memoryx.role": role, "memoryx.instance": name, "memoryx.pool": pool,
            "memoryx.gpu": str(gpu)}


def vllm_healthcheck(settings: ContainerSettings) -> Healthcheck:
    """vLLM's /health from inside the container; readiness polls read its verdict."""
    probe = (f"import urllib.request; urllib.request.urlopen("
             f"'http://{LOOPBACK}:{VLLM_CONTAINER_PORT}/health', timeout=5)")
    return Healthcheck(test=["CMD", "python3", "-c", probe],
                       interval=settings.vllm_healthcheck_interval, timeout="10s", retries=3,
                       start_period=settings.vllm_healthcheck_start_period)


def vllm_container(*, name: str, image: str, command: list[str], env: dict[str, str],
                   bind_address: str, port: int, gpu: int, pool: str, models_dir: str,
                   settings: ContainerSettings) -> Container:
    return Container(
        name=container_name("vllm", name), image=image, command=command, env=env,
        published_ports=published(bind_address, port, VLLM_CONTAINER_PORT),
        volumes=[f"{models_dir}:{MODEL_DIR}:ro"], device_requests=gpu_request(gpu),
        labels=labels("vllm", name, pool, gpu), healthcheck=vllm_healthcheck(settings),
        restart_policy=settings.restart_policy, stop_timeout=settings.vllm_stop_timeout,
        log_driver=settings.log_driver, log_options=dict(settings.log_options),
    )


def ollama_container(*, name: str, image: str, env: dict[str, str], bind_address: str,
                     port: int, gpu: int, pool: str, models_dir: str,
                     settings: ContainerSettings) -> Container:
    return Container(
        name=container_name("ollama", name), image=image, command=None, env=env,
        published_ports=published(bind_address, port, OLLAMA_CONTAINER_PORT),
        volumes=[f"{models_dir}:{OLLAMA_CONTAINER_MODELS}"], device_requests=gpu_request(gpu),
        labels=labels("ollama", name, pool, gpu), healthcheck=None,
        restart_policy=settings.restart_policy, stop_timeout=settings.ollama_stop_timeout,
        log_driver=settings.log_driver, log_options=dict(settings.log_options),
    )


def archive_name(image: str) -> str:
    """The docker-save archive of an image on air-gapped sites: `/` `:` `@` become `_`."""
    return "".join("_" if char in "/:@" else char for char in image) + ".tar"
