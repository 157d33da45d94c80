"""Turn the user's prompt, styles and expansion into the prompt strings a host WebUI encodes.

Fooocus encodes every part ("workload") of a prompt separately and concatenates the results. In
A1111/Forge the closest equivalent is to join the parts with ` BREAK `, which starts a new 75-token
chunk for each part (Fooocus: `modules/async_worker.py`, the positive/negative `tasks` lists of
workloads, each encoded by `default_pipeline.clip_encode`). The expansion goes last, after the styled parts and the extra prompt
lines. Differences that remain: the hosts take the pooled vector from the first chunk where Fooocus
sums the pooled vectors of all parts except the expansion, and hosts zero an empty negative.

Per image the Script calls `plan_prompt` (styles, with the image seed for Random Style), hands
`plan.expansion_source` to the expansion when it is on, then reads `plan.positive_text(expansion)`
and `plan.negative_text()`. The user's own prompts go into the infotext under `INFOTEXT_PROMPT_KEY`
and `INFOTEXT_NEGATIVE_KEY` (`original_prompt_infotext`), and `restore_original_prompts` puts them
back on paste so styles and expansion are never applied twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from lib_fooocus.styles.library import StyleLibrary, split_prompt_lines
from lib_fooocus.text import EXTRA_NETWORK_TAG, cleanup_commas, expansion_source, safe_str

BREAK = " BREAK "
INFOTEXT_PROMPT_KEY = "Fooocus prompt"
INFOTEXT_NEGATIVE_KEY = "Fooocus negative prompt"
INFOTEXT_EXPANSION_KEY = "Fooocus V2 expansion"
HOST_PROMPT_KEY = "Prompt"
HOST_NEGATIVE_KEY = "Negative prompt"

@dataclass(frozen=True)
class PromptPlan:
    """Fooocus's parts for one image, before the expansion is known."""

    positive_parts: list[str]
    negative_parts: list[str]
    network_tags: list[str]
    styles: list[str]
    expansion_requested: bool
    expansion_source: str

    def positive_text(self, expansion: str = "") -> str:
        """Parts joined by BREAK, the expansion as the last part, extra-network tags at the very end."""
        parts = [*self.positive_parts, expansion]
        text = join_parts(parts)
        if self.network_tags:
            text = f"{text} {' '.join(self.network_tags)}".strip()
        return text

    def negative_text(self) -> str:
        return join_parts(self.negative_parts)


def join_parts(parts: Sequence[str]) -> str:
    """Join parts with BREAK. Blank parts are dropped: in the hosts two BREAKs in a row would encode
    an empty chunk."""
    return BREAK.join(part.strip() for part in parts if part and part.strip())


def split_network_tags(text: str) -> tuple[str, list[str]]:
    """`text` without its extra-network tags, and the tags in order of appearance."""
    tags = EXTRA_NETWORK_TAG.findall(text)
    if not tags:
        return text, []
    return EXTRA_NETWORK_TAG.sub("", text), tags


def plan_prompt(
    library: StyleLibrary,
    prompt: str,
    negative_prompt: str,
    styles: Sequence[str],
    seed: int | None = None,
) -> PromptPlan:
    """Fooocus's prompt processing for one image (Fooocus `modules/async_worker.py`
    at 59f183ab: styles in selection order, their template lines, the prompt, the extra lines).

    The first non-empty line is the main prompt: its extra-network tags are taken out (they are put
    back at the end of the final prompt, where the host still finds them) and it is cleaned as
    Fooocus cleans it; styles are applied to it. Further lines are extra parts after the styled ones.
    Tags on extra lines move to the end as well (Fooocus leaves them as text there, but the hosts
    would activate them anyway), so a line holding only a tag leaves no empty chunk.
    Raises `UnknownStyleError` for unknown style names.
    """
    main, extra = split_prompt_lines(prompt)
    main, tags = split_network_tags(main)
    main = cleanup_commas(main)
    extra_lines = []
    for line in extra:
        text, line_tags = split_network_tags(line)
        tags += line_tags
        extra_lines.append(safe_str(text) if line_tags else text)
    main_negative, extra_negative = split_prompt_lines(negative_prompt)
    styled = library.assemble_lines(main, extra_lines, main_negative, extra_negative, styles, seed)
    return PromptPlan(
        positive_parts=styled.positive,
        negative_parts=styled.negative,
        network_tags=tags,
        styles=styled.styles,
        expansion_requested=styled.expansion_requested,
        expansion_source=expansion_source(prompt),  # the same text as styled.main_prompt
    )


def assemble_prompt(
    library: StyleLibrary,
    prompt: str,
    negative_prompt: str,
    styles: Sequence[str],
    seed: int | None = None,
    expand: Callable[[str, int | None], str] | None = None,
) -> tuple[str, str, PromptPlan]:
    """Host prompt strings for one image. `expand(main_prompt, seed)` is called when given and the
    main prompt is not empty (Fooocus turns the expansion off for an empty prompt)."""
    plan = plan_prompt(library, prompt, negative_prompt, styles, seed)
    expansion = expand(plan.expansion_source, seed) if expand and plan.expansion_source else ""
    return plan.positive_text(expansion), plan.negative_text(), plan


# -- infotext -------------------------------------------------------------------------------------


# The hosts write an empty value bare ("Key: ,") and their parser drops it again, so an empty original
# prompt would never be restored (the styled one would stay). Written as `""`, it parses back to "".
EMPTY_INFOTEXT_VALUE = '""'


def infotext_prompt_value(text: str) -> str:
    return text if text else EMPTY_INFOTEXT_VALUE


def original_prompt_infotext(
    original_prompts: Sequence[str],
    original_negatives: Sequence[str],
    final_prompts: Sequence[str],
    final_negatives: Sequence[str],
) -> dict[str, list[str]]:
    """Infotext entries that record the user's own prompts, one value per image, for each of the two
    keys only where the extension changed some image's prompt."""
    fields: dict[str, list[str]] = {}
    for key, originals, finals in (
        (INFOTEXT_PROMPT_KEY, original_prompts, final_prompts),
        (INFOTEXT_NEGATIVE_KEY, original_negatives, final_negatives),
    ):
        if list(originals) != list(finals):
            fields[key] = [infotext_prompt_value(value) for value in originals]
    return fields


def restore_original_prompts(params: MutableMapping[str, Any]) -> bool:
    """On infotext paste: put the user's own prompts back into 'Prompt' / 'Negative prompt' so the
    styles and the expansion recorded in the same infotext are applied once, not twice. Returns
    whether anything was restored."""
    restored = False
    for ours, host in ((INFOTEXT_PROMPT_KEY, HOST_PROMPT_KEY), (INFOTEXT_NEGATIVE_KEY, HOST_NEGATIVE_KEY)):
        value = params.get(ours)
        if isinstance(value, str):
            params[host] = value
            restored = True
    return restored


def original_prompts(params: Mapping[str, Any]) -> tuple[str, str]:
    """The user's prompts from parsed infotext: ours when recorded, else the host's."""
    prompt = params.get(INFOTEXT_PROMPT_KEY, params.get(HOST_PROMPT_KEY, ""))
    negative = params.get(INFOTEXT_NEGATIVE_KEY, params.get(HOST_NEGATIVE_KEY, ""))
    return str(prompt), str(negative)
