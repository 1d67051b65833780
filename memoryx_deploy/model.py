"""The normalized stack (docs/design.md) as typed dictionaries, and the one error type."""

from __future__ import annotations

from typing import Literal, TypedDict

from memoryx_deploy.containers import Container, LogConfig
from memoryx_deploy.monitoring import Monitoring
from memoryx_deploy.registry import RegistryView
from memoryx_deploy.tls import GatewayTls

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
    "engines",  # what each engine image runs on (memoryx_deploy/engines.py, issue 8)
    "registry",  # where the hosts pull images from (memoryx_deploy/registry.py, issue 10)
    "monitoring",  # Prometheus, exporters, alerts (memoryx_deploy/monitoring.py, issue 12)
)


class StackError(ValueError):
    """A broken layout: every problem found, one line each, each naming the item and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Gpu(TypedDict):
    index: int
    name: str
    memory_gib: float


class Host(TypedDict):
    address: str
    gpus: list[Gpu]


class Placement(TypedDict):
    """Where an instance runs; the first fields of both instance kinds."""

    name: str
    host: str
    address: str
    bind_address: str
    gpu: int
    position: int
    port: int
    container_name: str
    image: str
    pool: str
    env: dict[str, str]
    container: Container  # everything Docker needs (memoryx_deploy/containers.py)


class VllmInstance(Placement):
    served_model_name: str
    model_path: str
    model_dir: str  # on the host: vllm_models_dir/model_path
    gpu_memory_utilization: float
    args: list[str]
    weights_gib: float
    overhead_gib: float
    kv_cache_kib_per_token: float
    max_model_len: int


class OllamaInstance(Placement):
    model: str
    models_dir: str  # on the host, shared by the host's instances
    memory_gib: float
    embedding_dim: int


class PoolMember(TypedDict):
    name: str
    host: str
    address: str
    port: int


class Pool(TypedDict):
    kind: Literal["vllm", "ollama"]
    models: list[str]
    members: list[PoolMember]


class Route(TypedDict):
    path: str
    pool: str | None
    strip_prefix: bool
    route_by_model: bool
    exact: bool


class Gateway(TypedDict):
    host: str
    address: str
    port: int
    image: str
    routes: list[Route]
    models: dict[str, str]
    tls: GatewayTls  # issue 11: memoryx_deploy/tls.py
    log: LogConfig  # the client side's container log (memoryx_containers)
    router_log: LogConfig  # the router's, with the JSON access log (issue 12)


class Image(TypedDict):
    name: str
    archive: str  # its docker-save archive on air-gapped sites


class HostView(TypedDict):
    """What one inventory host runs: the inputs of its roles."""

    vllm_instances: list[VllmInstance]
    ollama_instances: list[OllamaInstance]
    gateway: bool
    gpus: list[int]
    images: list[Image]
    firewall_ports: list[int]  # published on the LAN: only the gateway host may connect


class Stack(TypedDict):
    hosts: dict[str, Host]
    by_host: dict[str, HostView]
    vllm_instances: list[VllmInstance]
    ollama_instances: list[OllamaInstance]
    pools: dict[str, Pool]
    gateway: Gateway
    registry: RegistryView
    monitoring: Monitoring  # issue 12: memoryx_deploy/monitoring.py
