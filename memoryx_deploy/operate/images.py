"""What a host must pull, how Docker's daemon.json names the registry, and which digest each
running container uses (issue 10). Filters of role container_image, role docker_engine and the
digest report; inputs are what Docker's API returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

from memoryx_deploy.inputs.registry import DIGEST

# daemon.json keys the project owns: set from memoryx_registry, removed when it says nothing.
DAEMON_KEYS = ("registry-mirrors", "insecure-registries")


class Pull(TypedDict):
    name: str
    reason: str  # "missing" or "moved"
    local: str  # digest of the image on the host ("" when missing)
    remote: str  # digest the registry has for the tag ("" for a reference pinned by digest)


def _digests(image: Mapping[str, Any]) -> list[str]:
    return [entry.split("@", 1)[1] for entry in image.get("RepoDigests") or [] if "@" in entry]


def local_image(name: str, local: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The host's image answering to `name` (a tag, or `repo@sha256:...`)."""
    for image in local:
        if name in (image.get("RepoTags") or []) or name in (image.get("RepoDigests") or []):
            return image
    return None


def pull_plan(names: Sequence[str], local: Sequence[Mapping[str, Any]],
              remote: Mapping[str, str]) -> list[Pull]:
    """The images to pull: missing on the host, or a tag the registry now resolves to another
    digest than the host's image (`remote`: name -> the registry's digest for the tags it was
    asked about). A reference pinned by digest is never moved: it is pulled only when missing."""
    pulls = []
    for name in names:
        image = local_image(name, local)
        wanted = "" if DIGEST.search(name) else remote.get(name, "")
        if image is None:
            pulls.append(Pull(name=name, reason="missing", local="", remote=wanted))
        elif wanted and wanted not in _digests(image):
            have = _digests(image)
            pulls.append(Pull(name=name, reason="moved", local=have[0] if have else "",
                              remote=wanted))
    return pulls


def registry_auth(registry: Mapping[str, Any], password: str) -> dict[str, str]:
    """The X-Registry-Auth document of Docker's API for the registry's login (empty: none)."""
    if not registry.get("username"):
        return {}
    return {"username": str(registry["username"]), "password": password,
            "serveraddress": str(registry.get("address", ""))}


def daemon_json(current: Mapping[str, Any], registry: Mapping[str, Any]) -> dict[str, Any]:
    """daemon.json with the registry keys as memoryx_registry says; every other key kept."""
    merged = {key: value for key, value in current.items() if key not in DAEMON_KEYS}
    if registry.get("mode") == "mirror":
        merged["registry-mirrors"] = [registry["url"]]
    if registry.get("mode") != "direct" and registry.get("insecure"):
        merged["insecure-registries"] = [registry["address"]]
    return merged


class RunningDigest(TypedDict):
    container: str
    image: str  # the reference the container was created from
    digest: str  # the registry digest of the image it runs ("" when it has none: loaded)
    image_id: str


def running_digests(containers: Sequence[Mapping[str, Any]],
                    images: Sequence[Mapping[str, Any]]) -> list[RunningDigest]:
    """Per container (Docker's container list: Names, Image, ImageID), the digest of the image
    it runs, read from the image's RepoDigests for the repository it was created from."""
    by_id = {image.get("Id"): image for image in images}
    found = []
    for container in containers:
        reference = str(container.get("Image", ""))
        image = by_id.get(container.get("ImageID"), {})
        repository = reference.split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        entries = [entry for entry in image.get("RepoDigests") or []
                   if entry.split("@", 1)[0] == repository]
        digests = [entry.split("@", 1)[1] for entry in entries] or _digests(image)
        names = container.get("Names") or [""]
        found.append(RunningDigest(container=str(names[0]).lstrip("/"), image=reference,
                                   digest=digests[0] if digests else "",
                                   image_id=str(container.get("ImageID", ""))))
    return sorted(found, key=lambda item: item["container"])
