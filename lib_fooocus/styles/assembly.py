"""Turn the user's prompt, styles and expansion into the prompt strings a host WebUI encodes.

Fooocus encodes every part ("workload") of a prompt separately and concatenates the results. In
A1111/Forge the closest equivalent is to join the parts with ` BREAK `, which starts a new 75-token
chunk for each part (Fooocus: `modules/async_worker.py`, the positive/negative `tasks` lists of
workloads, each encoded by `default_pipeline.clip_encode`). The expansion goes last, after the styled parts and the extra prompt
lines. Differences that remain: the hosts take the pooled vector from the first chunk where Fooocus
sums the pooled vectors of all parts except the expansion, and hosts zero an empty negative.

AND prompts (A1111's composable prompts, `modules/prompt_parser.py`: the positive prompt is split at
every whole upper-case word AND, each sub-prompt may end in `:weight` — a prompt without AND too;
extra-network tags are taken out of the prompt before): every sub-prompt is styled as a prompt of its own and keeps its weight at
its very end; the expansion is computed once per image, from the first sub-prompt with a positive
weight (normally the first), and becomes the last chunk of that sub-prompt only — its text continues
that sub-prompt, so appending it to the others would pull them towards the first one's subject and
count it once per sub-prompt. Style negatives are added once: the hosts encode the negative prompt
without the AND split, so an AND there is plain text and the negative is styled as usual.

Per image the Script calls `plan_prompt` (styles, with the image seed for Random Style), hands
`plan.expansion_source` to the expansion when it is on, then reads `plan.positive_text(expansion)`
and `plan.negative_text()`. The user's own prompts go into the infotext under `INFOTEXT_PROMPT_KEY`
and `INFOTEXT_NEGATIVE_KEY` (`original_prompt_infotext`), and `restore_original_prompts` puts them
back on paste so styles and expansion are never applied twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from lib_fooocus.styles.library import StyleLibrary, split_prompt_lines
from lib_fooocus.text import EXTRA_NETWORK_TAG, cleanup_commas, expansion_source, safe_str

BREAK = " BREAK "
AND = " AND "
# The hosts' split and weight rules (A1111 `modules/prompt_parser.py`: `re_AND`, `re_weight`): a
# whole word AND; a weight is `:number` at the end of a sub-prompt, spaces allowed around the colon.
# Tags after the weight are allowed too, since the host removes them before it looks for the weight.
AND_WORD = re.compile(r"\bAND\b")
SUBPROMPT_WEIGHT = re.compile(
    rf"\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+))((?:\s|{EXTRA_NETWORK_TAG.pattern})*)\Z"
)
INFOTEXT_PROMPT_KEY = "Fooocus prompt"
INFOTEXT_NEGATIVE_KEY = "Fooocus negative prompt"
INFOTEXT_EXPANSION_KEY = "Fooocus V2 expansion"
HOST_PROMPT_KEY = "Prompt"
HOST_NEGATIVE_KEY = "Negative prompt"

@dataclass(frozen=True)
class SubPrompt:
    """One sub-prompt of an AND prompt: its styled parts, its weight as written ('' = none) and
    whether the expansion goes into it."""

    parts: list[str]
    weight: str = ""
    takes_expansion: bool = False

    def text(self, expansion: str) -> str:
        body = join_parts([*self.parts, expansion if self.takes_expansion else ""])
        return f"{body}:{self.weight}" if self.weight else body


@dataclass(frozen=True)
class PromptPlan:
    """Fooocus's parts for one image, before the expansion is known. For an AND prompt
    `subprompts` holds each sub-prompt (`positive_parts` then lists all their parts, in order)."""

    positive_parts: list[str]
    negative_parts: list[str]
    network_tags: list[str]
    styles: list[str]
    expansion_requested: bool
    expansion_source: str
    subprompts: tuple[SubPrompt, ...] = ()

    def positive_text(self, expansion: str = "") -> str:
        """Parts joined by BREAK, the expansion as the last part, extra-network tags at the very end.
        AND prompts: each sub-prompt so, with its weight after its last part, joined by AND."""
        if self.subprompts:
            text = AND.join(sub.text(expansion) for sub in self.subprompts).strip()
        else:
            text = join_parts([*self.positive_parts, expansion])
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


def split_and(prompt: str) -> list[str]:
    """The sub-prompts of an AND prompt as the hosts split it (`[prompt]` without AND). An AND inside
    an extra-network tag does not split: the hosts remove the tags first."""
    tags = [match.span() for match in EXTRA_NETWORK_TAG.finditer(prompt)]
    pieces, start = [], 0
    for match in AND_WORD.finditer(prompt):
        if any(begin <= match.start() < end for begin, end in tags):
            continue
        pieces.append(prompt[start : match.start()])
        start = match.end()
    pieces.append(prompt[start:])
    return pieces


def split_weight(subprompt: str) -> tuple[str, str]:
    """A sub-prompt without its trailing `:weight`, and the weight as written ('' when none)."""
    match = SUBPROMPT_WEIGHT.search(subprompt)
    if match is None:
        return subprompt, ""
    return subprompt[: match.start()] + match.group(2), match.group(1)


def plan_prompt(
    library: StyleLibrary,
    prompt: str,
    negative_prompt: str,
    styles: Sequence[str],
    seed: int | None = None,
) -> PromptPlan:
    """Fooocus's prompt processing for one image (`plan_single_prompt`); an AND prompt is planned
    per sub-prompt (see the module docstring). Raises `UnknownStyleError` for unknown style names."""
    weighted = [split_weight(piece) for piece in split_and(prompt)]
    if len(weighted) == 1 and not weighted[0][1]:  # no AND, no weight (the hosts read one without AND too)
        return plan_single_prompt(library, prompt, negative_prompt, styles, seed)
    plans = [plan_single_prompt(library, text, negative_prompt, styles, seed) for text, _ in weighted]
    weights = [float(weight) if weight else 1.0 for _, weight in weighted]
    target = next((index for index, weight in enumerate(weights) if weight > 0), 0)
    first = plans[0]  # same styles, same seed: every sub-prompt has the same style negatives
    return PromptPlan(
        positive_parts=[part for plan in plans for part in plan.positive_parts],
        negative_parts=first.negative_parts,
        network_tags=[tag for plan in plans for tag in plan.network_tags],
        styles=first.styles,
        expansion_requested=first.expansion_requested,
        expansion_source=plans[target].expansion_source,
        subprompts=tuple(
            SubPrompt(plan.positive_parts, weight, index == target)
            for index, (plan, (_, weight)) in enumerate(zip(plans, weighted))
        ),
    )


def plan_single_prompt(
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
