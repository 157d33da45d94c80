"""What `Script.process()` does to a generation: styles and Fooocus V2 expansion rewrite the host's
prompt lists per image (image i uses its own seed `p.all_seeds[i]`), and the infotext records the
parameters, the expansion and the user's own prompts (so a paste restores them and never expands
twice).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib_fooocus.params import FooocusParams

log = logging.getLogger(__name__)

PER_IMAGE_ATTRIBUTE = "fooocus_per_image_infotext"
INFOTEXT_RANDOM_STYLE_KEY = "Fooocus random style"  # informational: the paste restores "Random Style" + seed


@dataclass
class Rewrite:
    """Per image: the final prompts and the expansion text; and the originals."""

    prompts: list[str] = field(default_factory=list)
    negatives: list[str] = field(default_factory=list)
    expansions: list[str] = field(default_factory=list)
    original_prompts: list[str] = field(default_factory=list)
    original_negatives: list[str] = field(default_factory=list)
    random_styles: list[str] = field(default_factory=list)  # what Random Style became, per image
    expansion_error: str = ""
    # Match Fooocus: (host text, Fooocus's parts, is negative) for every prompt of the generation
    match_parts: list[tuple[str, Any, bool]] = field(default_factory=list)


def wants_expansion(params: FooocusParams) -> bool:
    from lib_fooocus.styles.library import FOOOCUS_V2

    return params.expansion or FOOOCUS_V2 in params.styles


def known_styles(library: Any, styles: Sequence[str]) -> list[str]:
    """The selection without names the library lacks (each dropped one is logged)."""
    kept = []
    for name in styles:
        if library.resolve(name) is None:
            log.warning("Fooocus: style %r is not in the style library (refresh the picker?); skipped", name)
        else:
            kept.append(name)
    return kept


def _seed_of(p: Any, index: int) -> int:
    seeds = getattr(p, "all_seeds", None) or [getattr(p, "seed", 0)]
    seed = seeds[index] if index < len(seeds) else seeds[-1]
    try:
        return int(seed)
    except (TypeError, ValueError):
        return 0


def rewrite_prompts(
    p: Any,
    params: FooocusParams,
    library: Any,
    expand: Callable[[str, int], str] | None,
    should_stop: Callable[[], bool] | None = None,
    expand_batch: Callable[[str, list[int]], list[str]] | None = None,
) -> Rewrite | None:
    """Rewrite `p.all_prompts` & co. in place. None (nothing touched) when no style is selected and
    the expansion is off.

    The expansions are computed before any prompt is rewritten: each distinct (text, seed) pair once,
    with `expand_batch(text, seeds)` (one batched call per host batch, `p.batch_size` images) when it
    is given, else `expand(text, seed)` per image. Either may raise: the generation then goes on
    without the expansions still missing, and the reason is logged once and kept in
    `Rewrite.expansion_error`. `should_stop()` (the host's Interrupt) is asked before each call: once
    true, no more expansions are run."""
    from lib_fooocus.styles.assembly import plan_prompt
    from lib_fooocus.styles.library import FOOOCUS_V2, RANDOM_STYLE

    use_expansion = wants_expansion(params) and (expand is not None or expand_batch is not None)
    styles = [name for name in known_styles(library, params.styles) if library.resolve(name) != FOOOCUS_V2]
    match = bool(getattr(params, "match_fooocus", False))
    if not styles and not use_expansion and not match:
        return None
    random_slots = [index for index, name in enumerate(styles) if library.resolve(name) == RANDOM_STYLE]

    result = Rewrite()
    prompts = list(p.all_prompts)
    negatives = list(getattr(p, "all_negative_prompts", None) or [""] * len(prompts))
    hr_prompts = _optional_list(p, "all_hr_prompts")
    hr_negatives = _optional_list(p, "all_hr_negative_prompts")

    # 1. Plans per image (and per separate hires prompt), which say what to expand.
    plans = []
    for index, (prompt, negative) in enumerate(zip(prompts, negatives)):
        seed = _seed_of(p, index)
        plan = plan_prompt(library, prompt, negative, styles, seed)
        hr_plan = None
        if hr_prompts is not None and index < len(hr_prompts):
            hr_negative = hr_negatives[index] if hr_negatives is not None and index < len(hr_negatives) else negative
            if not (hr_prompts[index] == prompt and hr_negative == negative):
                # a separate hires prompt gets the same treatment with the same seed
                hr_plan = plan_prompt(library, hr_prompts[index], hr_negative, styles, seed)
        plans.append((seed, plan, hr_plan))
        if random_slots:
            result.random_styles.append(", ".join(plan.styles[slot] for slot in random_slots))

    # 2. The expansions: each distinct (source, seed) once, a host batch per call.
    wanted: dict[tuple[str, int], None] = {}
    if use_expansion:
        for seed, plan, hr_plan in plans:
            for one in (plan, hr_plan):
                if one is not None and one.expansion_source:
                    wanted[(one.expansion_source, seed)] = None
    per_call = max(1, int(getattr(p, "batch_size", 1) or 1)) if expand_batch is not None else 1
    expansions = _run_expansions(list(wanted), per_call, expand, expand_batch, should_stop, result)

    # 3. The final prompts.
    for index, (seed, plan, hr_plan) in enumerate(plans):
        expansion = expansions.get((plan.expansion_source, seed), "")
        new_prompt, new_negative = plan.positive_text(expansion), plan.negative_text()
        if match:
            _record_parts(result, plan, expansion, new_prompt, new_negative)
        result.original_prompts.append(prompts[index])
        result.original_negatives.append(negatives[index])
        result.prompts.append(new_prompt)
        result.negatives.append(new_negative)
        result.expansions.append(expansion)
        if hr_prompts is not None and index < len(hr_prompts):
            if hr_plan is None:
                hr_prompts[index], hr_negative = new_prompt, new_negative
            else:
                hr_expansion = expansions.get((hr_plan.expansion_source, seed), "")
                hr_prompts[index], hr_negative = hr_plan.positive_text(hr_expansion), hr_plan.negative_text()
                if match:
                    _record_parts(result, hr_plan, hr_expansion, hr_prompts[index], hr_negative)
            if hr_negatives is not None and index < len(hr_negatives):
                hr_negatives[index] = hr_negative

    p.all_prompts = result.prompts
    p.all_negative_prompts = result.negatives
    if result.prompts:
        p.main_prompt = result.prompts[0]
        p.main_negative_prompt = result.negatives[0]
    if hr_prompts is not None:
        p.all_hr_prompts = hr_prompts
    if hr_negatives is not None:
        p.all_hr_negative_prompts = hr_negatives
    return result


def _record_parts(result: Rewrite, plan: Any, expansion: str, prompt: str, negative: str) -> None:
    """Fooocus's parts of one image's final prompts: the styled parts (their pooled outputs summed),
    then the expansion when there is one."""
    from lib_fooocus.match.syntax import PromptParts

    result.match_parts.append((prompt, PromptParts.of(plan.positive_parts, expansion or None), False))
    result.match_parts.append((negative, PromptParts.of(plan.negative_parts), True))


def _run_expansions(
    keys: list[tuple[str, int]],
    per_call: int,
    expand: Callable[[str, int], str] | None,
    expand_batch: Callable[[str, list[int]], list[str]] | None,
    should_stop: Callable[[], bool] | None,
    result: Rewrite,
) -> dict[tuple[str, int], str]:
    """{(source, seed): expansion} for the `keys` (distinct, in image order) that could be computed.
    Keys of one source are grouped, `per_call` seeds per call, in the order of their first image."""
    by_source: dict[str, list[int]] = {}
    for source, seed in keys:
        by_source.setdefault(source, []).append(seed)
    done: dict[tuple[str, int], str] = {}
    for source, seeds in by_source.items():
        for start in range(0, len(seeds), per_call):
            chunk = seeds[start : start + per_call]
            if should_stop is not None and should_stop():
                result.expansion_error = "interrupted"
                log.info("Fooocus V2 expansion: interrupted, the remaining images are not expanded")
                return done
            try:
                if expand_batch is not None:
                    texts = list(expand_batch(source, chunk))
                    if len(texts) != len(chunk):
                        msg = f"expand_batch returned {len(texts)} texts for {len(chunk)} seeds"
                        raise RuntimeError(msg)
                else:
                    texts = [expand(source, seed) for seed in chunk]  # type: ignore[misc]
            except Exception as error:  # a missing model must not stop the generation
                result.expansion_error = str(error)
                log.error("Fooocus V2 expansion skipped for this generation: %s", error)
                return done
            done.update(((source, seed), text) for seed, text in zip(chunk, texts))
    return done


def _optional_list(p: Any, name: str) -> list[str] | None:
    value = getattr(p, name, None)
    return list(value) if isinstance(value, (list, tuple)) else None


# -- infotext -----------------------------------------------------------------------------------


def host_supports_per_image_infotext() -> bool:
    """A1111 1.9+ and Forge main index list values of `extra_generation_params` per image; older
    hosts print the list. Detected from the host's own `create_infotext`."""
    try:
        from modules import processing

        source = inspect.getsource(processing.create_infotext)
    except Exception:
        return False
    return "isinstance(value, list)" in source


def infotext_entries(params: FooocusParams, rewrite: Rewrite | None) -> dict[str, list[str] | str]:
    """Keys for `p.extra_generation_params`: scalar when the same for every image, else a per-image list."""
    from lib_fooocus.styles.assembly import INFOTEXT_EXPANSION_KEY, original_prompt_infotext

    entries: dict[str, list[str] | str] = dict(params.to_infotext())
    if rewrite is None:
        return entries
    per_image = original_prompt_infotext(
        rewrite.original_prompts, rewrite.original_negatives, rewrite.prompts, rewrite.negatives
    )
    if any(rewrite.expansions):
        per_image = {INFOTEXT_EXPANSION_KEY: list(rewrite.expansions), **per_image}
    if any(rewrite.random_styles):
        per_image = {INFOTEXT_RANDOM_STYLE_KEY: list(rewrite.random_styles), **per_image}
    for key, values in per_image.items():
        entries[key] = values[0] if len(set(values)) == 1 else list(values)
    return entries


def write_infotext(p: Any, entries: dict[str, list[str] | str], per_image_lists: bool | None = None) -> None:
    """Per-image lists go in as lists where the host indexes them; elsewhere image 0's value is
    written now and `postprocess_image` swaps in each image's own value before the host formats it."""
    if per_image_lists is None:
        per_image_lists = host_supports_per_image_infotext()
    extra = p.extra_generation_params
    deferred: dict[str, list[str]] = {}
    for key, value in entries.items():
        if isinstance(value, list) and not per_image_lists:
            extra[key] = value[0]
            deferred[key] = value
        else:
            extra[key] = value
    if deferred:
        setattr(p, PER_IMAGE_ATTRIBUTE, deferred)


def select_image_infotext(p: Any) -> None:
    """`postprocess_image`: put this image's values in place (hosts without per-image lists)."""
    deferred = getattr(p, PER_IMAGE_ATTRIBUTE, None)
    if not deferred:
        return
    index = int(getattr(p, "iteration", 0) or 0) * int(getattr(p, "batch_size", 1) or 1)
    index += int(getattr(p, "batch_index", 0) or 0)
    for key, values in deferred.items():
        if values:
            p.extra_generation_params[key] = values[min(index, len(values) - 1)]
