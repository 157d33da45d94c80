"""Prompt-text helpers shared by the expansion and the styles, and `expansion_source`: the one rule
for which text of a prompt the Fooocus V2 expansion continues (generation, preview, REST and CLI)."""

from __future__ import annotations

import re

# A1111's extra-network syntax (<lora:name:1>, <lyco:...>, <hypernet:...>), matched as the hosts
# match it: they find these anywhere in the final prompt and remove them before encoding.
EXTRA_NETWORK_TAG = re.compile(r"<\w+:[^>]+>")


def safe_str(text: object) -> str:
    """Fooocus's `safe_str`: collapse double spaces (16 passes), strip `,. \\r\\n` from both ends."""
    text = str(text)
    for _ in range(16):
        text = text.replace("  ", " ")
    return text.strip(",. \r\n")


def cleanup_commas(text: str) -> str:
    """Fooocus's clean-up of the main prompt: single spaces, comma-separated pieces stripped, empty
    pieces dropped, joined by ', '."""
    text = re.sub(" +", " ", text)
    text = re.sub(",+", ",", text)
    return ", ".join(piece.strip() for piece in text.split(",") if piece.strip())


def main_prompt_line(prompt: str) -> str:
    """Fooocus's main prompt: the first line that is not empty after `safe_str` ('' when none)."""
    for line in str(prompt).splitlines():
        line = safe_str(line)
        if line:
            return line
    return ""


def expansion_source(prompt: str) -> str:
    """The text the Fooocus V2 expansion continues: the main prompt line without extra-network tags
    (the WebUI's stand-in for Fooocus's LoRA tags), cleaned as Fooocus cleans it. Every entry point
    (generation, the preview button, REST, the CLI) expands exactly this text."""
    return cleanup_commas(EXTRA_NETWORK_TAG.sub("", main_prompt_line(prompt)))
