"""Where the hosts pull images from (`memoryx_registry`), and the reference each host pulls.

Three modes:
- `direct`: each image from its own registry (Docker Hub for `vllm/vllm-openai`, ...);
- `mirror`: Docker Hub images through a pull-through mirror (daemon.json `registry-mirrors`);
  the references stay as the data writes them. Docker sends no credentials to a mirror;
- `private`: every image from the site's registry, below an optional path `prefix`
  (`vllm/vllm-openai:v0.19.1` -> `registry.lan:5000/vllm/vllm-openai:v0.19.1`, Docker Hub's
  official images under `library/`), with a login when `username` is set (the password comes
  from the vault, never from here).

The data's references stay the identity of an image (memoryx_engines describes them); only
the container records, the host's image list and the smoke runs use the pulled reference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memoryx_deploy.inputs.fields import Reader
from memoryx_deploy.schema.stack import RegistryView

REGISTRY_KEYS = ("mode", "address", "prefix", "username", "ca_file", "insecure")
MODES = ("direct", "mirror", "private")
# host[:port]: a DNS name or an IPv4 address, no scheme, no path.
ADDRESS = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?$")
PREFIX = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


@dataclass(frozen=True)
class Registry:
    mode: str = "direct"
    address: str = ""
    prefix: str = ""
    username: str = ""
    ca_file: str = ""
    insecure: bool = False

    def reference(self, image: str) -> str:
        """The reference a host pulls and runs for the data's `image`. A digest pins the image:
        a tag beside it is dropped (Docker pulls by the digest alone)."""
        if DIGEST.search(image) and ":" in _last(image.split("@", 1)[0]):
            name, digest = image.split("@", 1)
            image = f"{name.rsplit(':', 1)[0]}@{digest}"
        if self.mode != "private":
            return image
        registry, path = split_registry(image)
        if registry and registry not in DOCKER_HUB:
            return image  # names a registry of its own: pulled from there
        if "/" not in path.split("@", 1)[0].split(":", 1)[0]:
            path = f"library/{path}"
        return "/".join(part for part in (self.address, self.prefix, path) if part)

    def view(self) -> RegistryView:
        scheme = "http" if self.insecure else "https"
        return RegistryView(mode=self.mode, address=self.address,
                            url=f"{scheme}://{self.address}" if self.address else "",
                            prefix=self.prefix, username=self.username, ca_file=self.ca_file,
                            insecure=self.insecure)


def _last(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def split_registry(image: str) -> tuple[str, str]:
    """('registry', 'path') of a reference; the registry is empty for Docker Hub's short names.
    Docker's rule: the first component is a registry when it has a '.' or a ':' or is
    `localhost`."""
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first, rest
    return "", image


def read_registry(problems: list[str], data: object) -> Registry:
    """`memoryx_registry`; absent means direct."""
    reader = Reader(problems, "registry", data, REGISTRY_KEYS)
    mode = reader.string("mode", default="direct")
    if mode not in MODES:
        reader.fail(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    registry = Registry(
        mode=mode,
        address=reader.string("address", default=""),
        prefix=reader.string("prefix", default="").strip("/"),
        username=reader.string("username", default=""),
        ca_file=reader.string("ca_file", default=""),
        insecure=reader.boolean("insecure", default=False),
    )
    for problem in _problems(registry):
        reader.fail(problem)
    return registry


def _problems(registry: Registry) -> list[str]:
    """What Docker cannot do with these settings, before any host is touched."""
    problems = []
    if registry.mode == "direct":
        extra = [key for key in ("address", "prefix", "username", "ca_file")
                 if getattr(registry, key)] + (["insecure"] if registry.insecure else [])
        if extra:
            problems.append(f"mode direct pulls from each image's own registry: "
                            f"{', '.join(extra)} would be ignored; set mode mirror or private")
        return problems
    if not registry.address:
        problems.append(f"mode {registry.mode} needs address (host[:port] of the registry)")
    elif not ADDRESS.match(registry.address) or "://" in registry.address:
        problems.append(f"address must be host[:port] without scheme or path, got {registry.address!r}")
    if registry.prefix and registry.mode != "private":
        problems.append("prefix is a path in a private registry; a mirror serves Docker Hub's paths")
    if registry.prefix and not PREFIX.match(registry.prefix):
        problems.append(f"prefix must be lowercase path components, got {registry.prefix!r}")
    if registry.username and registry.mode == "mirror":
        problems.append("username: Docker sends no credentials to a registry mirror; "
                        "use mode private for a registry that needs a login")
    if registry.username and registry.insecure:
        problems.append("username with insecure: true would send the password in clear text; "
                        "serve the registry over TLS (ca_file)")
    if registry.ca_file and registry.insecure:
        problems.append("ca_file with insecure: true: an insecure registry speaks plain HTTP")
    if registry.ca_file and not registry.ca_file.startswith("/"):
        problems.append(f"ca_file must be an absolute path on the controller, got {registry.ca_file!r}")
    return problems


def secret_problems(registry: RegistryView, password: object) -> list[str]:
    """A login needs its password (from the vault)."""
    if registry["username"] and not (isinstance(password, str) and password):
        return [f"registry {registry['address']}: username {registry['username']!r} is set but "
                "memoryx_registry_password is empty (set vault_memoryx_registry_password in the "
                "inventory's vault)"]
    return []


def archive_problems(images: list[str], source: object) -> list[str]:
    """An image pinned by digest cannot come from an archive: `docker load` restores tags,
    not registry digests, so nothing on the host would answer to `name@sha256:...`."""
    if source != "archive":
        return []
    return [f"image {image!r} is pinned by digest: an archive (memoryx_image_source: archive) "
            "cannot carry a registry digest; pin it by tag for air-gapped sites"
            for image in images if DIGEST.search(image)]
