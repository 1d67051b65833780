"""Per inventory host: what it runs, computed once so no host filters the whole stack."""

from __future__ import annotations

from collections.abc import Sequence

from memoryx_deploy.inputs.containers import GATEWAY_CONTAINERS, LOOPBACK, archive_name
from memoryx_deploy.schema.stack import Host, HostView, Image, OllamaInstance, Placement, VllmInstance, WarmUp


def host_views(inventory: list[str], hosts: dict[str, Host], vllm: list[VllmInstance],
               ollama: list[OllamaInstance], gateway_host: str,
               gateway_image: str) -> dict[str, HostView]:
    """Every inventory host (those the data gives nothing run nothing), with its roles' inputs."""
    views: dict[str, HostView] = {}
    for name in _unique([*hosts, gateway_host, *inventory]):
        mine_vllm = [i for i in vllm if i["host"] == name]
        mine_ollama = [i for i in ollama if i["host"] == name]
        placed = [*mine_vllm, *mine_ollama]
        images = [i["container"]["image"] for i in placed]  # the reference the host pulls
        if name == gateway_host and gateway_image:
            images.append(gateway_image)
        views[name] = HostView(
            vllm_instances=mine_vllm,
            ollama_instances=mine_ollama,
            gateway=name == gateway_host,
            gpus=[gpu["index"] for gpu in hosts[name]["gpus"]] if name in hosts else [],
            images=image_records(_unique(images)),
            firewall_ports=[i["port"] for i in placed if i["bind_address"] != LOOPBACK],
            boot_waves=boot_waves(placed, name == gateway_host),
            boot_warm={i["container_name"]: warm_up(i) for i in mine_ollama},
        )
    return views


def warm_up(instance: OllamaInstance) -> WarmUp:
    """Ollama loads its model at the first request: an empty embed loads it and keeps it loaded
    (as role ollama_bge warms it at a deploy), so a booted instance serves at once."""
    return WarmUp(url=f"http://{LOOPBACK}:{instance['port']}/api/embed",
                  body={"model": instance["model"], "input": "memoryx warm-up", "keep_alive": -1})


def boot_waves(placed: Sequence[Placement], gateway: bool) -> list[list[str]]:
    """The deploy's own waves: the instances at each position on their GPU, one position after
    the other (each needs its share of the GPU free when it starts), then the gateway's."""
    waves = [[i["container_name"] for i in placed if i["position"] == position]
             for position in sorted({i["position"] for i in placed})]
    return waves + ([[GATEWAY_CONTAINERS["router"], GATEWAY_CONTAINERS["client"]]] if gateway else [])


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def image_records(images: list[str]) -> list[Image]:
    """Each image with the file name of its docker-save archive."""
    return [Image(name=image, archive=archive_name(image)) for image in images]
