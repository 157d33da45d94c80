"""Fooocus's text encoding, given the host's tokenizer and text encoders as plain callables.

Fooocus (ComfyUI's `SDTokenizer` + `modules/patch_clip.py` at 59f183ab) differs from A1111/Forge in:
- emphasis: `(text)` multiplies the weight by 1.1, `(text:1.3)` SETS it (an enclosing weight is
  replaced, not multiplied); `[text]` is plain text; `\\(` `\\)` are literal parentheses;
- tokenisation per space-separated word, 75 tokens per 77-chunk, a word of fewer than 8 tokens moves
  whole to the next chunk, a longer one is split; CLIP-L pads with its end token, CLIP-G with 0;
- emphasis normalisation per chunk: each weighted token is pulled from the encoding of an "empty"
  sequence (start, end, pads) by its weight, then the chunk is rescaled to its original mean;
- pooled output: the first chunk's;
- a prompt is a list of parts ("workloads": prompt line, style lines, extra lines, expansion), each
  encoded on its own; the results are concatenated along the tokens, and the pooled vector is the
  SUM of the pooled outputs of the first `top_k` parts (the expansion is not among them);
- an empty negative prompt is encoded like any text (never zeroed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

EMPHASIS_FACTOR = 1.1
CHUNK_LENGTH = 77
LONG_WORD_TOKENS = 8  # words of this many tokens or more may be split across chunks

# Escaped parentheses are hidden from the emphasis parser behind control characters.
_ESCAPED_CLOSE = "\0\1"
_ESCAPED_OPEN = "\0\2"

TokenWeight = tuple[int, float]
Chunk = list[TokenWeight]


@dataclass(frozen=True)
class TokenizerSpec:
    """Special tokens of one CLIP tokenizer as Fooocus uses them."""

    start: int
    end: int
    pad: int
    length: int = CHUNK_LENGTH


CLIP_L_SPEC = TokenizerSpec(start=49406, end=49407, pad=49407)
CLIP_G_SPEC = TokenizerSpec(start=49406, end=49407, pad=0)


# -- emphasis ---------------------------------------------------------------------------------------


def _top_level_groups(text: str) -> list[str]:
    """Split `text` into plain runs and top-level parenthesised groups (a group keeps its
    parentheses). Unbalanced parentheses are treated as Fooocus treats them: the depth counter goes
    on (a stray ')' makes it negative) and only a return to depth 0 closes a group."""
    groups: list[str] = []
    current = ""
    depth = 0
    for char in text:
        if char == "(":
            if depth == 0 and current:
                groups.append(current)
                current = ""
            current += char
            depth += 1
        elif char == ")":
            depth -= 1
            current += char
            if depth == 0:
                groups.append(current)
                current = ""
        else:
            current += char
    if current:
        groups.append(current)
    return groups


def _weighted_segments(text: str, weight: float) -> list[tuple[str, float]]:
    segments: list[tuple[str, float]] = []
    for group in _top_level_groups(text):
        if len(group) < 2 or group[0] != "(" or group[-1] != ")":
            segments.append((group, weight))
            continue
        inner = group[1:-1]
        inner_weight = weight * EMPHASIS_FACTOR
        colon = inner.rfind(":")
        if colon > 0:
            try:
                inner_weight = float(inner[colon + 1 :])  # replaces the enclosing weight
                inner = inner[:colon]
            except ValueError:
                pass
        segments.extend(_weighted_segments(inner, inner_weight))
    return segments


def parse_emphasis(text: str) -> list[tuple[str, float]]:
    """(segment, weight) pairs of a prompt in Fooocus's emphasis syntax, escapes resolved."""
    hidden = text.replace("\\)", _ESCAPED_CLOSE).replace("\\(", _ESCAPED_OPEN)
    return [
        (segment.replace(_ESCAPED_CLOSE, ")").replace(_ESCAPED_OPEN, "("), weight)
        for segment, weight in _weighted_segments(hidden, 1.0)
    ]


def weighted_words(text: str) -> list[tuple[str, float]]:
    """The words Fooocus tokenises one by one (split at single spaces, newlines count as spaces)."""
    words: list[tuple[str, float]] = []
    for segment, weight in parse_emphasis(text):
        words.extend((word, weight) for word in segment.replace("\n", " ").split(" ") if word)
    return words


# -- chunks ---------------------------------------------------------------------------------------


def chunk_words(word_tokens: Sequence[Sequence[TokenWeight]], spec: TokenizerSpec) -> list[Chunk]:
    """Lay the tokens of each word into `spec.length`-token chunks: start token, up to length-2
    tokens, end token, pads. A word that does not fit moves whole to the next chunk unless it has
    `LONG_WORD_TOKENS` tokens or more, then it is split at the chunk end."""
    room = spec.length - 1  # tokens a chunk holds before its end token (start token included)
    chunks: list[Chunk] = []
    chunk: Chunk = [(spec.start, 1.0)]
    for tokens in word_tokens:
        pending = list(tokens)
        splittable = len(pending) >= LONG_WORD_TOKENS
        while pending:
            if len(chunk) + len(pending) <= room:
                chunk.extend(pending)
                break
            free = room - len(chunk)
            if splittable:
                chunk.extend(pending[:free])
                pending = pending[free:]
                chunk.append((spec.end, 1.0))
            else:
                chunk.append((spec.end, 1.0))
                chunk.extend([(spec.pad, 1.0)] * free)
            chunks.append(chunk)
            chunk = [(spec.start, 1.0)]
    chunk.append((spec.end, 1.0))
    chunk.extend([(spec.pad, 1.0)] * (spec.length - len(chunk)))
    chunks.append(chunk)
    return chunks


def tokenize_with_weights(text: str, tokenize_word: Callable[[str], Sequence[int]], spec: TokenizerSpec) -> list[Chunk]:
    """Fooocus's chunks of (token, weight) for `text`; `tokenize_word(word)` gives a word's token ids
    without start/end tokens (the host's tokenizer)."""
    word_tokens = [[(int(token), weight) for token in tokenize_word(word)] for word, weight in weighted_words(text)]
    return chunk_words(word_tokens, spec)


def empty_chunk(spec: TokenizerSpec, length: int | None = None) -> list[int]:
    """The "empty" sequence the weights are measured against: start, end, then pads."""
    length = spec.length if length is None else length
    return [spec.start, spec.end] + [spec.pad] * (length - 2)


# -- encoding -------------------------------------------------------------------------------------

# encode(token_id_lists) -> (hidden states (N, T, C), pooled (N, D) or None), one row per list.
EncodeTokens = Callable[[list[list[int]]], tuple[torch.Tensor, "torch.Tensor | None"]]


def encode_weighted(chunks: Sequence[Chunk], encode: EncodeTokens, spec: TokenizerSpec) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One text encoder's output for one part: (1, 77·chunks, C) and the first chunk's pooled (1, D).

    All chunks (and, when any weight differs from 1, the empty sequence) go to `encode` in one
    batch, as Fooocus does. Per chunk with weights: z_j ← z_empty_j + w_j·(z_j − z_empty_j) for every
    token j of weight w_j ≠ 1, then z ← z·mean(z_before)/mean(z_after)."""
    token_lists = [[token for token, _ in chunk] for chunk in chunks]
    weighted = any(weight != 1.0 for chunk in chunks for _, weight in chunk)
    if weighted or not token_lists:
        width = max((len(tokens) for tokens in token_lists), default=spec.length)
        token_lists = [*token_lists, empty_chunk(spec, width)]
    hidden, pooled = encode(token_lists)
    hidden = hidden.float()
    first_pooled = pooled[0:1].float() if pooled is not None else None
    if not chunks:
        return hidden[-1:], first_pooled
    outputs = []
    for index, chunk in enumerate(chunks):
        z = hidden[index : index + 1].clone()
        if weighted:
            z = _normalised_emphasis(z, hidden[-1], [weight for _, weight in chunk])
        outputs.append(z)
    return torch.cat(outputs, dim=-2), first_pooled


def _normalised_emphasis(z: torch.Tensor, z_empty: torch.Tensor, weights: list[float]) -> torch.Tensor:
    original_mean = z.mean()
    for weight in sorted(set(weights)):
        if weight == 1.0:
            continue
        rows = torch.tensor([w == weight for w in weights], device=z.device)
        # pull each token from the empty sequence's state at its position, by its weight
        z[0, rows] = (z[0, rows] - z_empty[rows]) * weight + z_empty[rows]
    return z * (original_mean / z.mean())


@dataclass(frozen=True)
class TextEncoder:
    """One of the model's text encoders: the host's word tokenizer and token encoder, with the
    special tokens Fooocus uses for it."""

    tokenize_word: Callable[[str], Sequence[int]]
    encode: EncodeTokens
    spec: TokenizerSpec


def encode_text(text: str, encoders: Sequence[TextEncoder]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One part through every encoder: hidden states concatenated along the channels (SDXL:
    CLIP-L 768 ‖ CLIP-G 1280), pooled from the last encoder that has one (SDXL: CLIP-G)."""
    hidden_states, pooled = [], None
    for encoder in encoders:
        chunks = tokenize_with_weights(text, encoder.tokenize_word, encoder.spec)
        hidden, encoder_pooled = encode_weighted(chunks, encoder.encode, encoder.spec)
        hidden_states.append(hidden)
        if encoder_pooled is not None:
            pooled = encoder_pooled
    return torch.cat(hidden_states, dim=-1), pooled


def encode_parts(
    parts: Sequence[str], top_k: int, encode_one: Callable[[str], tuple[torch.Tensor, torch.Tensor | None]]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fooocus's multi-part encoding: each part encoded on its own (equal texts once), the hidden
    states concatenated along the tokens, pooled = sum of the first `top_k` parts' pooled outputs."""
    if not parts:
        msg = "a prompt needs at least one part (Fooocus encodes '' for an empty prompt)"
        raise ValueError(msg)
    cache: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
    hidden_states = []
    pooled_sum: torch.Tensor | None = None
    for index, text in enumerate(parts):
        if text not in cache:
            cache[text] = encode_one(text)
        hidden, pooled = cache[text]
        hidden_states.append(hidden)
        if index < top_k and pooled is not None:
            pooled_sum = pooled.clone() if pooled_sum is None else pooled_sum + pooled
    return torch.cat(hidden_states, dim=1), pooled_sum
