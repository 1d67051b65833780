"""Sampling parameters of the vLLM SIMULATOR (memoryx-deploy lab). This is NOT vLLM.

`n`, `stop` and `logprobs` as vLLM 0.19.1's OpenAI server takes them, because clients send them
(an agent's stop strings, a ranker's logprobs, n candidates) and the gateway passes them on:
* ``n``: that many choices, each with its own ``index``; n < 1 is a 400 ("n must be at least 1").
* ``stop``: a string or a list of strings. The answer ends before the first one it would
  contain, finish_reason "stop" and ``stop_reason`` the string; an empty string is a 400.
* ``logprobs``: chat takes ``logprobs: true`` and ``top_logprobs`` (alternatives per token;
  ``top_logprobs`` without ``logprobs`` is a 400), completions take ``logprobs: <int>``; more
  than vLLM's ``--max-logprobs`` (20) is a 400; negative values other than -1 (the whole
  vocabulary, hence above 20) are 400s. Answers carry OpenAI's shapes: chat
  ``{"content": [{token, logprob, bytes, top_logprobs}]}``, completions
  ``{tokens, token_logprobs, top_logprobs, text_offset}``.
The numbers are deterministic stand-ins (a token's hash), not a model's probabilities.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from vllm_structured import StructuredError

MAX_LOGPROBS = 20  # vllm serve --max-logprobs, its default
VOCABULARY = "the whole vocabulary"  # what -1 asks for


# A request vLLM answers with 400 (message, and the parameter it names): the one refusal type of
# the stand-in's request parameters, structured output's too.
SamplingError = StructuredError


@dataclass(frozen=True)
class Sampling:
    n: int = 1
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # None: not asked; else alternatives per token


PLAIN = Sampling()  # one answer, no stop string, no logprobs

def _integer(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise SamplingError(f"{name}: Input should be a valid integer", name)
    return value


def _stops(value: Any) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value
    if stops is None:
        return ()
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise SamplingError("stop: Input should be a valid string or a list of strings", "stop")
    if any(s == "" for s in stops):
        raise SamplingError("stop cannot contain an empty string.", "stop")
    return tuple(stops)


def _logprobs(kind: str, body: dict[str, Any]) -> int | None:
    if kind == "chat":
        top, name = _integer(body, "top_logprobs"), "top_logprobs"
        if top is not None and top < -1:
            raise SamplingError("`top_logprobs` must be a positive value or -1.", name)
        if top is not None and top != 0 and not body.get("logprobs"):
            raise SamplingError("when using `top_logprobs`, `logprobs` must be set to true.", name)
        number = (top or 0) if body.get("logprobs") else None
    else:
        number, name = _integer(body, "logprobs"), "logprobs"
        if number is not None and number < -1:
            raise SamplingError("`logprobs` must be a positive value or -1.", name)
    if number is not None and (number == -1 or number > MAX_LOGPROBS):
        asked = VOCABULARY if number == -1 else str(number)
        raise SamplingError(f"Requested sample logprobs of {asked}, which is greater than max "
                            f"allowed: {MAX_LOGPROBS}", name)
    return number


def sampling(kind: str, body: dict[str, Any]) -> Sampling:
    """The request's n, stop and logprobs, or the SamplingError vLLM answers with a 400."""
    n = _integer(body, "n")
    if n is not None and n < 1:
        raise SamplingError(f"n must be at least 1, got {n}.", "n")
    return Sampling(n or 1, _stops(body.get("stop")), _logprobs(kind, body))


def cut_at_stop(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], str | None]:
    """The answer's pieces up to the first stop string it contains (which it does not keep),
    and that string; the pieces unchanged and None when it contains none."""
    text = "".join(pieces)
    found = [(text.find(s), s) for s in stops if s in text]
    if not found:
        return pieces, None
    end, stop = min(found)
    kept: list[str] = []
    length = 0
    for piece in pieces:
        if length >= end:
            break
        kept.append(piece[: end - length])
        length += len(piece)
    return [p for p in kept if p], stop


def _logprob(token: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}\x00{token}".encode()).digest()
    return -round(int.from_bytes(digest[:2], "big") / 65535 * 4, 4)


def _alternatives(token: str, count: int) -> list[tuple[str, float]]:
    """The sampled token first, then `count` others, each less likely than the one before."""
    chosen = _logprob(token, "chosen")
    return [(token, chosen), *((f"{token.strip()}#{i}", chosen - 0.5 * (i + 1)) for i in range(count))]


def chat_logprobs(pieces: list[str], top: int) -> dict[str, Any]:
    def entry(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode())}

    content = []
    for piece in pieces:
        ranked = _alternatives(piece, top)
        content.append({**entry(*ranked[0]), "top_logprobs": [entry(*a) for a in ranked[:top]]})
    return {"content": content}


def completion_logprobs(pieces: list[str], top: int, offset: int = 0) -> dict[str, Any]:
    offsets = []
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    ranked = [_alternatives(piece, top) for piece in pieces]
    return {
        "text_offset": offsets,
        "token_logprobs": [r[0][1] for r in ranked],
        "tokens": list(pieces),
        "top_logprobs": [dict(r) for r in ranked],  # the sampled token and `top` others
    }
