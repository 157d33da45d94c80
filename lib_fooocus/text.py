"""Prompt-text helpers shared by the expansion and the styles."""

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
