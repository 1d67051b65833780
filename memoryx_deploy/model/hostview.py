"""Per inventory host: what it runs, computed once so no host filters the whole stack."""

from __future__ import annotations

from memoryx_deploy.inputs.containers import LOOPBACK, archive_name
from memoryx_deploy.schema.stack import Host, HostView, Image, OllamaInstance, VllmInstance


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
        )
    return views


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def image_records(images: list[str]) -> list[Image]:
    """Each image with the file name of its docker-save archive."""
    return [Image(name=image, archive=archive_name(image)) for image in images]
