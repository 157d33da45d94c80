"""Host prompt strings from Fooocus's parts: BREAK-joined chunks, expansion last, LoRA tags kept."""

from __future__ import annotations

import pytest

from lib_fooocus.styles.assembly import (
    BREAK,
    INFOTEXT_NEGATIVE_KEY,
    INFOTEXT_PROMPT_KEY,
    assemble_prompt,
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
    calls = []

    def expand(text: str, seed: int | None) -> str:
        calls.append((text, seed))
        return f"{text}, golden, intricate"

    positive, negative, plan = assemble_prompt(
        library, "a cat\nwearing a hat", "dogs", ["Fooocus V2", "Two Lines", "Enhance"], 7, expand
    )
    assert calls == [("a cat", 7)]  # the expansion sees the raw main prompt, not the styled one
    assert positive == "first a cat BREAK second BREAK wearing a hat BREAK a cat, golden, intricate"
    assert negative == "low quality BREAK dogs"
    assert plan.expansion_requested
    assert plan.positive_parts == ["first a cat", "second", "wearing a hat"]
    assert positive.split(BREAK) == [*plan.positive_parts, "a cat, golden, intricate"]


def test_no_expansion_for_an_empty_prompt(library: StyleLibrary) -> None:
    positive, _, _ = assemble_prompt(library, "  ,. ", "", ["Sharp"], 1, lambda text, seed: "never")
    assert positive == "cinematic still  . crisp"


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
    positive, negative, _ = assemble_prompt(library, original, original_negative, ["Sharp"], 1)
    per_image = original_prompt_infotext([original], [original_negative], [positive], [negative])
    assert per_image == {INFOTEXT_PROMPT_KEY: [original], INFOTEXT_NEGATIVE_KEY: [original_negative]}
    fields = {key: values[0] for key, values in per_image.items()}
    pasted = {"Prompt": positive, "Negative prompt": negative, "Steps": "20", **fields}
    assert restore_original_prompts(pasted)
    assert pasted["Prompt"] == original
    assert pasted["Negative prompt"] == original_negative
    # applying the same styles again gives the same prompt, not a doubly styled one
    again, again_negative, _ = assemble_prompt(library, pasted["Prompt"], pasted["Negative prompt"], ["Sharp"], 1)
    assert (again, again_negative) == (positive, negative)


def test_unchanged_prompts_are_not_recorded() -> None:
    assert original_prompt_infotext(["a"], ["b"], ["a"], ["b"]) == {}
    assert original_prompt_infotext(["a"], ["b"], ["a"], ["x BREAK b"]) == {INFOTEXT_NEGATIVE_KEY: ["b"]}
    # one changed image records every image's original; an empty original is written as ""
    assert original_prompt_infotext(["a", ""], ["", ""], ["a", "z"], ["", ""]) == {INFOTEXT_PROMPT_KEY: ["a", '""']}
    params = {"Prompt": "a"}
    assert not restore_original_prompts(params)
    assert params == {"Prompt": "a"}
    assert original_prompts({"Prompt": "p", "Negative prompt": "n", INFOTEXT_PROMPT_KEY: "orig"}) == ("orig", "n")
