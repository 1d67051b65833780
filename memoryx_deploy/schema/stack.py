"""The shape of the stack model: the typed dictionaries every stage passes along (docs/design.md,
"Normalized stack"), and StackError, the one error type. No logic lives here."""

from __future__ import annotations

from typing import Any, Literal, TypedDict


class Healthcheck(TypedDict):
    test: list[str]
    interval: str
    timeout: str
    retries: int
    start_period: str


class LogConfig(TypedDict):
    """A container's log driver and its options (Docker's HostConfig.LogConfig Type, Config)."""

    driver: str
    options: dict[str, str]


class Container(TypedDict):
    name: str
    image: str
    command: list[str] | None
    env: dict[str, str]
    published_ports: list[str]
    volumes: list[str]
    device_requests: list[dict[str, Any]]
    labels: dict[str, str]
    healthcheck: Healthcheck | None
    restart_policy: str
    stop_timeout: int
    log_driver: str
    log_options: dict[str, str]


class RegistryView(TypedDict):
    """The registry as the roles use it (no secret: the password is a vault variable)."""

    mode: str
    address: str  # host[:port]; empty in direct mode
    url: str  # https://address (http:// when insecure); empty in direct mode
    prefix: str
    username: str  # a login before any pull when set
    ca_file: str  # controller path of the CA the hosts trust for it; empty: the system's
    insecure: bool


class SiteCa(TypedDict):
    dir: str
    names: list[str]
    valid_days: int
    renew_days: int


class GatewayTls(TypedDict):
    enabled: bool
    certificate: str  # "site_ca" or "vault"
    site_ca: SiteCa
    expiry_fail_days: int
    plain_http_port: int  # 0: plain HTTP off
    http2: bool
    ca_bundle: str  # the CA bundle clients trust, on the controller ("" = system store)
    url: str  # what clients call: https://address:port (http:// without TLS)


class Alerts(TypedDict):
    instance_down_for: str
    pool_down_for: str
    kv_cache_usage_above: float
    kv_cache_for: str
    requests_waiting_above: int
    requests_waiting_for: str


class Target(TypedDict):
    address: str  # host:port, as Prometheus connects
    labels: dict[str, str]


class Exporters(TypedDict):
    """What one host runs for Prometheus, and the ports only the Prometheus host may reach."""

    address: str  # where its exporters listen: the host's address
    node_exporter: bool
    mtail: bool
    firewall_ports: list[int]


class Monitoring(TypedDict):
    enabled: bool
    host: str  # the Prometheus host (an inventory host)
    address: str  # its address: the source the exporters and vLLM ports admit
    listen_address: str
    port: int
    url: str  # Prometheus's HTTP API
    scrape_interval: str
    scrape_interval_seconds: float
    scrape_timeout: str
    evaluation_interval: str
    retention: str
    node_exporter_port: int
    mtail_port: int
    alerts: Alerts
    jobs: dict[str, list[Target]]  # job name -> targets
    exporters: dict[str, Exporters]  # host -> its exporters (hosts running none are absent)
    metrics_socket_dir: str  # mtail's socket on the gateway host ("" when off)
    backend_sources: list[str]  # admitted to the backend ports: the gateway host, the Prometheus host


class StackError(ValueError):
    """A broken layout: every problem found, one line each, each naming the item and field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class Gpu(TypedDict):
    index: int
    name: str
    memory_gib: float
    compute_capability: str  # as declared, else known by the name ("" when neither)


class EngineView(TypedDict):
    """What an engine image runs on and needs (memoryx_engines, memoryx_extra_engines)."""

    engine: str  # vllm or ollama
    version: str
    compute_capabilities: list[str]
    min_driver: str
    min_cuda: str


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
    container: Container  # everything Docker needs (inputs/containers.py)


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
    capacity: int  # sequences its members run at once: vLLM's max_num_seqs, Ollama's parallel


class Route(TypedDict):
    path: str
    pool: str | None
    strip_prefix: bool
    route_by_model: bool
    exact: bool


class GatewayContainers(TypedDict):
    router: str  # routes, balances, checks the members' health
    client: str  # the clients' side: TLS, keys, limits, in front of the router


class Gateway(TypedDict):
    host: str
    address: str
    port: int
    image: str
    routes: list[Route]
    models: dict[str, str]
    tls: GatewayTls  # inputs/tls.py
    auth: str  # "required" or "off"
    api_key_names: list[str]  # the names of the keys it accepts (the keys stay in the vault)
    # networks that may call without a key, each under a name and a key's policy (issue 21)
    trusted_clients: list[dict[str, Any]]
    containers: GatewayContainers
    restart_policy: str  # memoryx_containers' restart_policy, as every managed container's
    log: LogConfig  # the client side's container log (memoryx_containers)
    router_log: LogConfig  # the router's, with the JSON access log (issue 12)


class WarmUp(TypedDict):
    """A request that makes an instance ready to serve (Ollama: load its model and keep it)."""

    url: str
    body: dict[str, Any]


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
    # its containers in the order they start at boot: a wave once the one before is healthy
    boot_waves: list[list[str]]
    boot_warm: dict[str, WarmUp]  # container -> the request that warms it once it runs


class Embedding(TypedDict):
    """The embedding service every Ollama instance serves (memoryx_ollama)."""

    pool: str
    model: str
    embedding_dim: int


class Deploy(TypedDict):
    """How this site deploys (memoryx_image_source, ..._archive_dir, memoryx_client_config_dir,
    memoryx_verify: "" leaves it to each playbook)."""

    image_source: str
    image_archive_dir: str
    client_config_dir: str
    verify: str


class Secrets(TypedDict):
    """The variable holding each secret, as the preflight found and checked it ("" when none);
    never the secret itself."""

    registry_password: str
    gateway_api_keys: str
    gateway_tls_certificate: str
    gateway_tls_key: str


class Stack(TypedDict):
    hosts: dict[str, Host]
    by_host: dict[str, HostView]
    vllm_instances: list[VllmInstance]
    ollama_instances: list[OllamaInstance]
    pools: dict[str, Pool]
    gateway: Gateway
    registry: RegistryView
    monitoring: Monitoring  # inputs/monitoring.py, model/monitoring.py
    ollama: Embedding
    engines: dict[str, EngineView]  # image -> its engine, every valid entry of the data
    deploy: Deploy  # inputs/site.py
    secrets: Secrets  # inputs/site.py
    defaults_taken: list[str]  # the optional variables the data leaves out, with their defaults
