"""Host prompt strings from Fooocus's parts: BREAK-joined chunks, expansion last, LoRA tags kept."""

from __future__ import annotations

import re

import pytest

from lib_fooocus.styles.assembly import (
    BREAK,
    INFOTEXT_NEGATIVE_KEY,
    INFOTEXT_PROMPT_KEY,
    cleanup_commas,
    join_parts,
    original_prompt_infotext,
    original_prompts,
    plan_prompt,
    restore_original_prompts,
    split_network_tags,
)
from lib_fooocus.styles.library import StyleLibrary, UnknownStyleError


@pytest.fixture
def library() -> StyleLibrary:
    return StyleLibrary.from_styles([
        {"name": "Sharp", "prompt": "cinematic still {prompt} . crisp", "negative_prompt": "blurry"},
        {"name": "Enhance", "prompt": "", "negative_prompt": "low quality"},
        {"name": "Two Lines", "prompt": "first {prompt}\nsecond", "negative_prompt": ""},
    ])


def test_parts_are_joined_with_break_and_the_expansion_is_last(library: StyleLibrary) -> None:
    plan = plan_prompt(library, "a cat\nwearing a hat", "dogs", ["Fooocus V2", "Two Lines", "Enhance"], 7)
    assert plan.expansion_source == "a cat"  # the expansion sees the raw main prompt, not the styled one
    positive, negative = plan.positive_text("a cat, golden, intricate"), plan.negative_text()
    assert positive == "first a cat BREAK second BREAK wearing a hat BREAK a cat, golden, intricate"
    assert negative == "low quality BREAK dogs"
    assert plan.expansion_requested
    assert plan.positive_parts == ["first a cat", "second", "wearing a hat"]
    assert positive.split(BREAK) == [*plan.positive_parts, "a cat, golden, intricate"]


def test_no_expansion_for_an_empty_prompt(library: StyleLibrary) -> None:
    plan = plan_prompt(library, "  ,. ", "", ["Sharp"], 1)
    assert plan.expansion_source == ""  # Fooocus turns the expansion off for an empty prompt
    assert plan.positive_text() == "cinematic still  . crisp"


def test_empty_parts_never_become_empty_chunks(library: StyleLibrary) -> None:
    plan = plan_prompt(library, "a cat", "", ["Enhance"])
    assert plan.positive_text("") == "a cat"
    assert plan.negative_text() == "low quality"
    assert join_parts(["a", "", "  ", "b"]) == "a BREAK b"
    assert plan_prompt(library, "", "", []).positive_text() == ""


def test_lora_tags_leave_the_styled_text_and_stay_in_the_prompt(library: StyleLibrary) -> None:
    plan = plan_prompt(library, "a cat, <lora:catStyle:0.8>, sitting\n<lora:hat:1> hat\n<hypernet:x:1>", "", ["Sharp"])
    assert plan.expansion_source == "a cat, sitting"
    assert plan.positive_parts == ["cinematic still a cat, sitting . crisp", "hat"]
    assert plan.network_tags == ["<lora:catStyle:0.8>", "<lora:hat:1>", "<hypernet:x:1>"]
    text = plan.positive_text("a cat, sitting, soft")
    assert text == ("cinematic still a cat, sitting . crisp BREAK hat BREAK a cat, sitting, soft "
                    "<lora:catStyle:0.8> <lora:hat:1> <hypernet:x:1>")
    # what the host encodes once it has removed the tags: no empty chunk anywhere
    stripped = split_network_tags(text)[0]
    assert all(part.strip() for part in stripped.split("BREAK"))


def test_prompt_of_only_a_tag(library: StyleLibrary) -> None:
    plan = plan_prompt(library, "<lora:x:1>", "", [])
    assert plan.positive_text() == "<lora:x:1>"
    assert plan.expansion_source == ""


def test_main_prompt_is_cleaned_like_fooocus() -> None:
    assert cleanup_commas("a  cat,,dog ,  ,hat") == "a cat, dog, hat"
    assert cleanup_commas("(red, blue:1.2) car") == "(red, blue:1.2) car"
    assert split_network_tags("x <lora:a:1> y") == ("x  y", ["<lora:a:1>"])
    assert split_network_tags("no tags") == ("no tags", [])


def test_unknown_styles_propagate(library: StyleLibrary) -> None:
    with pytest.raises(UnknownStyleError):
        plan_prompt(library, "a", "", ["Missing"])


def test_random_style_uses_the_image_seed(library: StyleLibrary) -> None:
    a = plan_prompt(library, "a cat", "", ["Random Style"], seed=5)
    b = plan_prompt(library, "a cat", "", ["Random Style"], seed=5)
    assert a == b
    assert a.styles[0] in library.names


def test_infotext_round_trip_restores_the_users_prompt(library: StyleLibrary) -> None:
    original, original_negative = "a cat <lora:x:1>\nwith a hat", "dogs"
    plan = plan_prompt(library, original, original_negative, ["Sharp"], 1)
    positive, negative = plan.positive_text(), plan.negative_text()
    per_image = original_prompt_infotext([original], [original_negative], [positive], [negative])
    assert per_image == {INFOTEXT_PROMPT_KEY: [original], INFOTEXT_NEGATIVE_KEY: [original_negative]}
    fields = {key: values[0] for key, values in per_image.items()}
    pasted = {"Prompt": positive, "Negative prompt": negative, "Steps": "20", **fields}
    assert restore_original_prompts(pasted)
    assert pasted["Prompt"] == original
    assert pasted["Negative prompt"] == original_negative
    # applying the same styles again gives the same prompt, not a doubly styled one
    again = plan_prompt(library, pasted["Prompt"], pasted["Negative prompt"], ["Sharp"], 1)
    assert (again.positive_text(), again.negative_text()) == (positive, negative)


def test_unchanged_prompts_are_not_recorded() -> None:
    assert original_prompt_infotext(["a"], ["b"], ["a"], ["b"]) == {}
    assert original_prompt_infotext(["a"], ["b"], ["a"], ["x BREAK b"]) == {INFOTEXT_NEGATIVE_KEY: ["b"]}
    # one changed image records every image's original; an empty original is written as ""
    assert original_prompt_infotext(["a", ""], ["", ""], ["a", "z"], ["", ""]) == {INFOTEXT_PROMPT_KEY: ["a", '""']}
    params = {"Prompt": "a"}
    assert not restore_original_prompts(params)
    assert params == {"Prompt": "a"}
    assert original_prompts({"Prompt": "p", "Negative prompt": "n", INFOTEXT_PROMPT_KEY: "orig"}) == ("orig", "n")


# -- AND prompts ----------------------------------------------------------------------------------


def host_reading(prompt: str) -> list[tuple[str, float]]:
    """What A1111/Forge make of a positive prompt: extra-network tags removed, sub-prompts split at
    the whole word AND, a trailing `:number` taken as the sub-prompt's weight (default 1)."""
    text = re.sub(r"<\w+:[^>]+>", "", prompt)
    subprompts = []
    for sub in re.split(r"\bAND\b", text):
        head, _, tail = sub.strip().rpartition(":")
        try:
            subprompts.append((head.strip(), float(tail)))
        except ValueError:
            subprompts.append((sub.strip(), 1.0))
    return subprompts


def test_and_prompt_styles_every_subprompt_and_keeps_its_weight(library: StyleLibrary) -> None:
    calls = []

    def expand(text: str, seed: int | None) -> str:
        calls.append((text, seed))
        return f"{text}, golden"

    plan = plan_prompt(library, "a cat:1.3 AND a dog:0.7", "ugly AND bad hands", ["Fooocus V2", "Sharp", "Enhance"], 7)
    positive, negative = plan.positive_text(expand(plan.expansion_source, 7)), plan.negative_text()
    assert calls == [("a cat", 7)]  # once, from the first sub-prompt, never from "a cat:1.3 AND a dog:0.7"
    assert positive == "cinematic still a cat . crisp BREAK a cat, golden:1.3 AND cinematic still a dog . crisp:0.7"
    assert host_reading(positive) == [
        ("cinematic still a cat . crisp BREAK a cat, golden", 1.3),
        ("cinematic still a dog . crisp", 0.7),
    ]
    # the hosts encode the negative without the AND split: styled as one prompt, style negatives once
    assert negative == "blurry BREAK low quality BREAK ugly AND bad hands"
    assert plan.positive_parts == ["cinematic still a cat . crisp", "cinematic still a dog . crisp"]


def test_and_prompt_with_tags_and_lines(library: StyleLibrary) -> None:
    # tags before or after a weight: the hosts remove them before reading the weight
    prompt = "a cat:1.3 <lora:x:1> AND a dog\nin the rain:0.7 <lora:y:0.5> AND a hat <lora:z:1>:0.5"
    plan = plan_prompt(library, prompt, "", ["Sharp"])
    positive = plan.positive_text("a cat, soft")
    assert positive == ("cinematic still a cat . crisp BREAK a cat, soft:1.3 AND cinematic still a dog . crisp "
                        "BREAK in the rain:0.7 AND cinematic still a hat . crisp:0.5 <lora:x:1> <lora:y:0.5> <lora:z:1>")
    assert host_reading(positive) == [
        ("cinematic still a cat . crisp BREAK a cat, soft", 1.3),
        ("cinematic still a dog . crisp BREAK in the rain", 0.7),
        ("cinematic still a hat . crisp", 0.5),
    ]
    assert plan.network_tags == ["<lora:x:1>", "<lora:y:0.5>", "<lora:z:1>"]


def test_expansion_goes_to_the_first_positively_weighted_subprompt(library: StyleLibrary) -> None:
    plan = plan_prompt(library, "ugly:-0.5 AND a cat", "", [])
    assert plan.expansion_source == "a cat"
    assert plan.positive_text("a cat, soft") == "ugly:-0.5 AND a cat BREAK a cat, soft"
    assert host_reading(plan.positive_text("x")) == [("ugly", -0.5), ("a cat BREAK x", 1.0)]


def test_and_is_a_whole_upper_case_word(library: StyleLibrary) -> None:
    for prompt in ("an ANDROID on the sand", "cats and dogs", "<lora:AND:1> a cat", "(a cat:1.2)"):
        plan = plan_prompt(library, prompt, "", ["Sharp"])
        assert plan.subprompts == ()
    assert len(plan_prompt(library, "a cat,AND a dog", "", []).subprompts) == 2


def test_a_weight_without_and_stays_at_the_end(library: StyleLibrary) -> None:
    # the hosts read a trailing weight on a prompt without AND as well
    positive = plan_prompt(library, "a cat : 1.5", "", ["Sharp"]).positive_text("a cat, soft")
    assert positive == "cinematic still a cat . crisp BREAK a cat, soft:1.5"
    assert host_reading(positive) == [("cinematic still a cat . crisp BREAK a cat, soft", 1.5)]
