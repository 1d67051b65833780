"""GPU memory arithmetic, shared by the checks and the plan.

A vLLM instance reserves `gpu_memory_utilization` x the card's memory at start and needs, inside
that, its weights, a fixed overhead (CUDA context, activations) and the KV cache of at least one
sequence of `max_model_len` tokens. An Ollama instance needs its `memory_gib`.
"""

from __future__ import annotations

from dataclasses import dataclass

from memoryx_deploy.schema.stack import Gpu, OllamaInstance, Stack, VllmInstance

KIB_PER_GIB = 1024**2


def kv_gib(instance: VllmInstance, tokens: int) -> float:
    return instance["kv_cache_kib_per_token"] * tokens / KIB_PER_GIB


def needed_gib(instance: VllmInstance) -> float:
    """Weights + overhead + the KV cache of one full-length sequence."""
    return (instance["weights_gib"] + instance["overhead_gib"]
            + kv_gib(instance, instance["max_model_len"]))


def kv_capacity_tokens(instance: VllmInstance, card_gib: float) -> int:
    """Tokens of KV cache that fit in the reservation once weights and overhead are in."""
    free = (instance["gpu_memory_utilization"] * card_gib - instance["weights_gib"]
            - instance["overhead_gib"])
    return max(0, int(free * KIB_PER_GIB / instance["kv_cache_kib_per_token"]))


@dataclass(frozen=True)
class GpuLoad:
    """What one GPU carries."""

    host: str
    gpu: Gpu
    vllm: list[VllmInstance]
    ollama: list[OllamaInstance]

    @property
    def card_gib(self) -> float:
        return self.gpu["memory_gib"]

    @property
    def shares(self) -> list[tuple[str, float]]:
        """(instance, share of the card): vLLM's utilization, Ollama's memory / card."""
        return ([(i["name"], i["gpu_memory_utilization"]) for i in self.vllm]
                + [(i["name"], i["memory_gib"] / self.card_gib) for i in self.ollama])

    @property
    def share(self) -> float:
        return sum(share for _, share in self.shares)

    @property
    def reserved_gib(self) -> float:
        return self.share * self.card_gib

    @property
    def estimates(self) -> list[tuple[str, float]]:
        return ([(i["name"], needed_gib(i)) for i in self.vllm]
                + [(i["name"], i["memory_gib"]) for i in self.ollama])

    @property
    def estimate_gib(self) -> float:
        return sum(gib for _, gib in self.estimates)

    @property
    def headroom_gib(self) -> float:
        return self.card_gib - max(self.reserved_gib, self.estimate_gib)


def gpu_loads(stack: Stack) -> list[GpuLoad]:
    """Every GPU of every host, in host order then index order."""
    return [
        GpuLoad(
            host=name, gpu=gpu,
            vllm=[i for i in stack["vllm_instances"]
                  if i["host"] == name and i["gpu"] == gpu["index"]],
            ollama=[i for i in stack["ollama_instances"]
                    if i["host"] == name and i["gpu"] == gpu["index"]],
        )
        for name, host in stack["hosts"].items()
        for gpu in host["gpus"]
    ]
