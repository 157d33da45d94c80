"""Which prompts Match Fooocus can encode as Fooocus does, and the parts of each prompt.

Fooocus has no prompt editing (`[from:to:when]`, `[a|b]`), no composable prompts (`AND`), no
`BREAK`, and writes textual inversions as `embedding:name` (the hosts by bare name). A prompt using
any of these is left to the host's own encoder for the whole generation; extra-network tags
(`<lora:…>`) are fine, the hosts take them out before encoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lib_fooocus.text import EXTRA_NETWORK_TAG

# A1111 prompt editing / alternation: a [...] group holding ':' or '|' (not escaped)
_EDITING = re.compile(r"(?<!\\)\[[^\[\]]*(?<!\\)[:|][^\[\]]*(?<!\\)\]")
_AND = re.compile(r"\bAND\b")
_BREAK = re.compile(r"\bBREAK\b")
_FOOOCUS_EMBEDDING = re.compile(r"(?:^|\s)embedding:\S")


def unsupported_syntax(text: str, host_embeddings: Iterable[str] = ()) -> str | None:
    """Why the host's encoder must encode `text` (a short reason), or None when Fooocus's can."""
    text = EXTRA_NETWORK_TAG.sub(" ", text)
    if _EDITING.search(text):
        return "prompt editing [from:to:when] / [a|b]"
    if _AND.search(text):
        return "AND (composable prompts)"
    if _BREAK.search(text):
        return "BREAK"
    if _FOOOCUS_EMBEDDING.search(text):
        return "embedding:name"
    for name in host_embeddings:
        if name and re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text):
            return f"textual inversion {name}"
    return None


@dataclass(frozen=True)
class PromptParts:
    """One prompt as Fooocus encodes it: its parts in order and how many of the first ones add
    their pooled output (the expansion, last, does not)."""

    parts: tuple[str, ...]
    top_k: int

    @classmethod
    def of(cls, basic: Iterable[str], expansion: str | None = None) -> PromptParts:
        parts = tuple(basic) or ("",)
        if expansion is None:
            return cls(parts, len(parts))
        return cls((*parts, expansion), len(parts))


def host_text_key(text: str) -> str:
    """The prompt as the host hands it to its encoder, for lookups: extra-network tags removed,
    outer whitespace stripped (what the hosts do before encoding)."""
    return EXTRA_NETWORK_TAG.sub("", str(text)).strip()
