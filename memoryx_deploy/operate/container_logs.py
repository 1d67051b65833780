"""Where a container's log lives on its host, and what bound the data sets for it.

The status view and the lab tests read `docker inspect` of a managed container and measure its
log files: `log_files` says which (a folder and a shell glob within it), `size_bytes` reads
Docker's sizes, `expected_logs` lists every managed container's LogConfig as the stack computes
it. Nothing here runs a command.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memoryx_deploy.inputs.containers import DOCKER_SIZE
from memoryx_deploy.schema.stack import LogConfig, Stack

DOCKER_ROOT = "/var/lib/docker"
UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}  # Docker's sizes are 1024-based (RAMInBytes)


@dataclass(frozen=True)
class LogFiles:
    """The log files of one container: `directory`/`pattern` (the live file and its rotated
    copies), and the bound its options set (None when an option is absent)."""

    driver: str
    directory: str
    pattern: str
    max_size: int | None
    max_file: int | None

    @property
    def glob(self) -> str:
        """For a shell: `du -cb GLOB`, `ls -l GLOB` (quote nothing; the paths have no spaces)."""
        return posixpath.join(self.directory, self.pattern)

    @property
    def bound(self) -> int | None:
        """Bytes the log can take at most (Docker may exceed max-size by one line per file)."""
        if self.max_size is None or self.max_file is None:
            return None
        return self.max_size * self.max_file


def size_bytes(size: str) -> int:
    """Docker's "50m" in bytes; ValueError for anything but a whole number of k, m or g."""
    if not DOCKER_SIZE.match(size):
        raise ValueError(f"not a Docker size such as 10m or 1g: {size!r}")
    return int(size[:-1]) * UNITS[size[-1]]


def log_files(inspect: Mapping[str, Any], docker_root: str = DOCKER_ROOT) -> LogFiles | None:
    """The log files of the container `docker inspect` describes (one object of its list);
    None for a driver that keeps no file on the host.

    json-file: LogPath (`<id>-json.log`, empty until the container first starts) and its rotated
    copies LogPath.1, LogPath.2, ... (`.gz` with compress). local: `local-logs/container.log` and
    its rotated copies (compressed) in the container's folder; inspect shows no path for them.
    """
    config = inspect.get("HostConfig", {}).get("LogConfig", {})
    driver = str(config.get("Type", ""))
    options = config.get("Config") or {}
    container_dir = _container_dir(inspect, docker_root)
    if driver == "json-file":
        path = inspect.get("LogPath") or posixpath.join(container_dir,
                                                         f"{inspect['Id']}-json.log")
        directory, name = posixpath.split(path)
        pattern = f"{name}*"
    elif driver == "local":
        directory, pattern = posixpath.join(container_dir, "local-logs"), "container.log*"
    else:
        return None
    max_file = options.get("max-file")
    return LogFiles(
        driver=driver, directory=directory, pattern=pattern,
        max_size=size_bytes(options["max-size"]) if "max-size" in options else None,
        max_file=int(max_file) if max_file is not None else None,
    )


def _container_dir(inspect: Mapping[str, Any], docker_root: str) -> str:
    """The container's own folder: where Docker keeps its hostname file (also with a Docker
    root other than /var/lib/docker)."""
    for key in ("HostnamePath", "ResolvConfPath", "HostsPath"):
        path = inspect.get(key) or ""
        if posixpath.basename(posixpath.dirname(path)) == inspect["Id"]:
            return posixpath.dirname(path)
    return posixpath.join(docker_root, "containers", inspect["Id"])


def expected_logs(stack: Stack, gateway_container: str,
                  router_container: str) -> dict[str, tuple[str, LogConfig]]:
    """Every managed container -> (its host, the LogConfig the data asks for). The gateway's
    two containers are named by role nginx_unified (its container name variables)."""
    expected = {
        instance["container"]["name"]: (
            instance["host"],
            LogConfig(driver=instance["container"]["log_driver"],
                      options=dict(instance["container"]["log_options"])))
        for instance in [*stack["vllm_instances"], *stack["ollama_instances"]]
    }
    gateway = stack["gateway"]
    expected[gateway_container] = (gateway["host"], gateway["log"])
    expected[router_container] = (gateway["host"], gateway["router_log"])
    return expected
