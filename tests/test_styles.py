"""Fooocus's style rules (Fooocus `modules/sdxl_styles.py` and `modules/async_worker.py` at 59f183ab) on style files made by the tests."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from lib_fooocus.styles.assembly import plan_prompt
from lib_fooocus.styles.library import (
    FOOOCUS_DEFAULT_SELECTION,
    OWN_DEFAULT_SELECTION,
    Style,
    StyleLibrary,
    UnknownStyleError,
    normalize_name,
    preview_key,
    safe_str,
    style_files_in_order,
)


def parts(library: StyleLibrary, prompt: str, negative: str, selected: list[str], seed: int | None = None):
    """The positive and negative parts the Script builds for one image (`plan_prompt`)."""
    plan = plan_prompt(library, prompt, negative, selected, seed)
    return plan.positive_parts, plan.negative_parts


def write_styles(path: Path, entries: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


def style(name: str, prompt: str = "", negative: str = "") -> dict:
    return {"name": name, "prompt": prompt, "negative_prompt": negative}


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("sai-anime", "SAI Anime"),
        ("mre-dark-cyberpunk", "MRE Dark Cyberpunk"),
        ("MK Cross Processing Print", "Mk Cross Processing Print"),
        ("3d-model", "3D Model"),
        ("pixel art 3d", "Pixel Art 3D"),
        ("futuristic-retro cyberpunk", "Futuristic Retro Cyberpunk"),
        ("ALL CAPS NAME", "All Caps Name"),
        ("photo (studio)", "Photo (Studio)"),
        ("saint portrait", "SAInt Portrait"),  # Fooocus's replacement applies anywhere: a quirk we keep
        ("mreal thing", "MREal Thing"),
        ("double  space", "Double  Space"),
        ("Fooocus Sharp", "Fooocus Sharp"),
        ("x", "X"),
    ],
)
def test_normalize_name_matches_fooocus_rules(raw: str, normalised: str) -> None:
    assert normalize_name(raw) == normalised


def test_safe_str_collapses_spaces_and_strips_punctuation() -> None:
    assert safe_str("  a    cat ,. \r\n") == "a cat"
    assert safe_str(",.") == ""
    assert safe_str("a, b.c") == "a, b.c"


def test_preview_key_is_lower_case_with_underscores() -> None:
    assert preview_key("SAI 3D Model") == "sai_3d_model"
    assert preview_key("Fooocus V2") == "fooocus_v2"


# -- files and order ------------------------------------------------------------------------------


def test_file_order_sorts_case_insensitively_and_moves_fooocus_files_last(tmp_path: Path) -> None:
    names = ["sdxl_styles_twri.json", "b.json", "sdxl_styles_fooocus.json", "A.json", "c.csv",
             "zeta.json", "sdxl_styles_sai.json", "notes.txt"]
    for name in names:
        (tmp_path / name).write_text("[]", encoding="utf-8")
    write_styles(tmp_path / "sub" / "inner.json", [])
    (tmp_path / "sub" / "sdxl_styles_sai.json").write_text("[]", encoding="utf-8")
    order = [p.relative_to(tmp_path).as_posix() for p in style_files_in_order(tmp_path)]
    assert order == [
        "sub/inner.json",  # bottom-up walk: sub-folders first
        "sub/sdxl_styles_sai.json",  # only top-level built-in names are moved
        "A.json",
        "b.json",
        "c.csv",
        "zeta.json",
        "sdxl_styles_fooocus.json",
        "sdxl_styles_sai.json",
        "sdxl_styles_twri.json",
    ]


def test_names_follow_file_order_and_later_folders(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    write_styles(first / "sdxl_styles_fooocus.json", [style("Fooocus One", "{prompt} one")])
    write_styles(first / "mine.json", [style("my-b", "{prompt} b"), style("my a", "{prompt} a")])
    write_styles(second / "Other.json", [style("other", "{prompt} o")])
    library = StyleLibrary.load([first, second, tmp_path / "missing"])
    # within a file: file order, not sorted; user files before Fooocus's; later folders after
    assert library.names == ["My B", "My A", "Fooocus One", "Other"]
    assert library.warnings == []


def test_name_collision_keeps_first_position_and_takes_later_values(tmp_path: Path) -> None:
    write_styles(tmp_path / "mine.json", [style("shared-name", "mine {prompt}", "mine neg"), style("solo", "{prompt}")])
    write_styles(tmp_path / "sdxl_styles_fooocus.json", [style("Shared Name", "theirs {prompt}", "theirs neg")])
    library = StyleLibrary.load([tmp_path])
    assert library.names == ["Shared Name", "Solo"]
    shared = library.styles["Shared Name"]
    assert (shared.prompt, shared.negative_prompt) == ("theirs {prompt}", "theirs neg")
    assert shared.source.endswith("sdxl_styles_fooocus.json")
    assert len(library.overrides) == 1
    assert "Shared Name" in library.overrides[0]


def test_collision_across_folders(tmp_path: Path) -> None:
    write_styles(tmp_path / "a" / "x.json", [style("dup", "a {prompt}"), style("after", "{prompt}")])
    write_styles(tmp_path / "b" / "y.json", [style("DUP", "b {prompt}")])
    library = StyleLibrary.load([tmp_path / "a", tmp_path / "b"])
    assert library.names == ["Dup", "After"]
    assert library.styles["Dup"].prompt == "b {prompt}"


def test_missing_fields_count_as_empty(tmp_path: Path) -> None:
    write_styles(tmp_path / "s.json", [{"name": "only name"}, {"name": "neg", "negative_prompt": "bad"}])
    library = StyleLibrary.load([tmp_path])
    assert library.styles["Only Name"] == Style("Only Name", "", "", str(tmp_path / "s.json"))
    assert library.styles["Neg"] == Style("Neg", "", "bad", str(tmp_path / "s.json"))


def test_single_file_can_be_loaded(tmp_path: Path) -> None:
    path = write_styles(tmp_path / "one.json", [style("single", "{prompt} x")])
    assert StyleLibrary.load([path]).names == ["Single"]


# -- malformed input ------------------------------------------------------------------------------


def test_malformed_files_and_entries_warn_once_each_and_the_rest_loads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.json").write_text("[{\"name\": ", encoding="utf-8")
    (tmp_path / "object.json").write_text('{"name": "x"}', encoding="utf-8")
    write_styles(tmp_path / "mixed.json", [
        style("good one", "{prompt} g"),
        "just a string",
        {"prompt": "{prompt} no name"},
        {"name": "bad prompt", "prompt": 5},
        {"name": "   "},
        style("good two", "{prompt} h"),
    ])
    with caplog.at_level(logging.WARNING, logger="lib_fooocus.styles.library"):
        library = StyleLibrary.load([tmp_path])
    assert library.names == ["Good One", "Good Two"]
    assert len(library.warnings) == 6
    joined = "\n".join(library.warnings)
    assert "broken.json" in joined
    assert "object.json" in joined
    assert "expected a JSON list" in joined
    for entry in ("entry 2", "entry 3", "entry 4 ('bad prompt')", "entry 5"):
        assert entry in joined
    assert all("mixed.json" in w for w in library.warnings if "entry" in w)
    assert [r.getMessage() for r in caplog.records] == library.warnings


def test_non_utf8_file_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "latin.json").write_bytes(b'[{"name": "caf\xe9"}]')
    write_styles(tmp_path / "ok.json", [style("fine", "{prompt}")])
    library = StyleLibrary.load([tmp_path])
    assert library.names == ["Fine"]
    assert len(library.warnings) == 1
    assert "latin.json" in library.warnings[0]


# -- A1111 CSV ------------------------------------------------------------------------------------


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a1111_csv_is_read_with_a1111_prompt_rule(tmp_path: Path) -> None:
    write_csv(tmp_path / "styles.csv", (
        "name,prompt,negative_prompt\n"
        "Oil,\"{prompt}, oil painting\",\"blurry, photo\"\n"
        "Append,\"dramatic light, moody\",\n"
        "Neg only,,\"lowres, ugly\"\n"
        "# a comment row,ignored,ignored\n"
        "Neg keeps user,,\"{prompt}, jpeg artifacts\"\n"
    ))
    library = StyleLibrary.load([tmp_path])
    assert library.names == ["Oil", "Append", "Neg Only", "Neg Keeps User"]
    assert parts(library, "a cat", "", ["Oil"]) == (["a cat, oil painting"], ["blurry, photo"])
    # A1111: a style without {prompt} is appended after ", "
    positive, negative = parts(library, "a cat", "bad", ["Append"])
    assert positive == ["a cat, dramatic light, moody"]
    assert negative == ["bad"]
    # negative-only: Fooocus prepends the prompt as its own part
    assert parts(library, "a cat", "bad", ["Neg Only"]) == (["a cat"], ["lowres, ugly", "bad"])
    assert library.styles["Neg Keeps User"].negative_prompt == "jpeg artifacts"


def test_a1111_csv_old_text_column_and_bom(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_bytes("\ufeffname,text\nLegacy,\"{prompt} in legacy\"\n".encode())
    library = StyleLibrary.load([tmp_path / "old.csv"])
    assert parts(library, "x", "", ["Legacy"])[0] == ["x in legacy"]


def test_csv_without_name_column_is_a_warning(tmp_path: Path) -> None:
    write_csv(tmp_path / "bad.csv", "title,prompt\nA,b\n")
    library = StyleLibrary.load([tmp_path])
    assert library.names == []
    assert "bad.csv" in library.warnings[0]
    assert "'name' column" in library.warnings[0]


# -- assembly -------------------------------------------------------------------------------------


@pytest.fixture
def library() -> StyleLibrary:
    return StyleLibrary.from_styles([
        style("Sharp", "cinematic still {prompt} . crisp", "blurry, soft"),
        style("Enhance", "", "low quality, artefacts"),
        style("Photo", "photograph {prompt}, 50mm", "drawing"),
        style("Two Lines", "first {prompt}\nsecond line", "neg one\nneg two"),
        style("No Placeholder", "masterpiece, best quality", "worst quality"),
        style("Empty", "", ""),
    ])


def test_styles_apply_in_selection_order_with_negatives_before_the_users(library: StyleLibrary) -> None:
    positive, negative = parts(library, "a cat", "dogs", ["Photo", "Sharp"])
    assert positive == ["photograph a cat, 50mm", "cinematic still a cat . crisp"]
    assert negative == ["drawing", "blurry, soft", "dogs"]


def test_fooocus_default_combination(library: StyleLibrary) -> None:
    # Fooocus's assembly (async_worker.py): Enhance + Sharp, empty negative -> [Sharp(prompt)] / [Enhance-neg, Sharp-neg]
    positive, negative = parts(library, "a cat", "", ["Fooocus V2", "Enhance", "Sharp"])
    assert positive == ["cinematic still a cat . crisp"]
    assert negative == ["low quality, artefacts", "blurry, soft"]


def test_prompt_is_prepended_only_when_no_style_has_a_placeholder(library: StyleLibrary) -> None:
    assert parts(library, "a cat", "", ["Enhance"])[0] == ["a cat"]
    assert parts(library, "a cat", "", ["No Placeholder"])[0] == ["a cat", "masterpiece, best quality"]
    assert parts(library, "a cat", "", ["No Placeholder", "Photo"])[0] == [
        "masterpiece, best quality",
        "photograph a cat, 50mm",
    ]


def test_multi_line_templates_give_one_part_per_line(library: StyleLibrary) -> None:
    positive, negative = parts(library, "a cat", "n", ["Two Lines", "Enhance"])
    assert positive == ["first a cat", "second line"]
    assert negative == ["neg one", "neg two", "low quality, artefacts", "n"]


def test_extra_prompt_lines_follow_the_styled_parts(library: StyleLibrary) -> None:
    positive, negative = parts(library, "  a cat ,\n\n a hat.\nsunny ", "dogs\nrain", ["Sharp"])
    assert positive == ["cinematic still a cat . crisp", "a hat", "sunny"]
    assert negative == ["blurry, soft", "dogs", "rain"]


def test_without_styles_the_prompt_is_the_only_part(library: StyleLibrary) -> None:
    assert parts(library, "a cat", "dogs", []) == (["a cat"], ["dogs"])
    assert parts(library, "a cat", "dogs", ["Fooocus V2"]) == (["a cat"], ["dogs"])


def test_empty_parts_are_dropped_with_fooocus_default(library: StyleLibrary) -> None:
    assert parts(library, "a cat", "", ["Empty"]) == (["a cat"], [""])
    assert parts(library, "", "", ["Enhance"]) == ([""], ["low quality, artefacts"])
    assert parts(library, "", "", ["Photo"]) == (["photograph , 50mm"], ["drawing"])


def test_fooocus_v2_is_only_a_flag(library: StyleLibrary) -> None:
    with_flag = plan_prompt(library, "a cat", "", ["Sharp", "Fooocus V2"])
    without = plan_prompt(library, "a cat", "", ["Sharp"])
    assert (with_flag.positive_parts, with_flag.negative_parts) == (without.positive_parts, without.negative_parts)
    assert with_flag.expansion_requested
    assert not without.expansion_requested
    assert with_flag.styles == ["Sharp"]


def test_names_resolve_through_normalisation(library: StyleLibrary) -> None:
    assert parts(library, "a", "", ["two-lines"]) == parts(library, "a", "", ["Two Lines"])
    assert library.resolve("fooocus-v2") == "Fooocus V2"
    assert "photo" in library
    assert library.get("PHOTO").name == "Photo"


def test_unknown_names_raise_one_error_listing_all(library: StyleLibrary) -> None:
    with pytest.raises(UnknownStyleError) as caught:
        parts(library, "a", "", ["Sharp", "Nope", "Random Style", "Also Missing"], seed=1)
    assert caught.value.names == ["Nope", "Also Missing"]
    assert "'Nope'" in str(caught.value)
    assert "'Also Missing'" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_random_style_is_drawn_with_random_random_of_the_seed(library: StyleLibrary) -> None:
    names = library.names
    for seed in (0, 1, 42, 2**40 + 3):
        rng = random.Random(seed)
        first, second = rng.choice(names), rng.choice(names)
        styled = plan_prompt(library, "a cat", "", ["Random Style", "Fooocus V2", "Random Style"], seed)
        assert styled.styles == [first, second]
        expected = plan_prompt(library, "a cat", "", [first, second])
        assert styled.positive_parts == expected.positive_parts
        assert styled.negative_parts == expected.negative_parts
    picks = {plan_prompt(library, "a", "", ["Random Style"], seed).styles[0] for seed in range(40)}
    assert len(picks) > 1


def test_random_style_needs_a_seed(library: StyleLibrary) -> None:
    with pytest.raises(ValueError, match="seed"):
        parts(library, "a", "", ["Random Style"])


def test_search_matches_names_first_then_text(library: StyleLibrary) -> None:
    assert [s.name for s in library.search("photo")] == ["Photo"]
    assert [s.name for s in library.search("CRISP")] == ["Sharp"]
    assert [s.name for s in library.search("line")] == ["Two Lines"]
    assert [s.name for s in library.search("quality")] == ["Enhance", "No Placeholder"]
    assert len(library.search("")) == len(library)


def test_default_selection_prefers_fooocus_set(library: StyleLibrary) -> None:
    assert library.default_selection() == []
    own = StyleLibrary.from_styles([style(OWN_DEFAULT_SELECTION[0], "", "x"), style(OWN_DEFAULT_SELECTION[1], "{prompt}")])
    assert own.default_selection() == list(OWN_DEFAULT_SELECTION)
    both = StyleLibrary.from_styles([*own.styles.values(), Style("Fooocus Enhance", "", "n"), Style("Fooocus Sharp", "{prompt}")])
    assert both.default_selection() == list(FOOOCUS_DEFAULT_SELECTION)
    assert both.selectable_names[:2] == ["Fooocus V2", "Random Style"]


def test_previews_are_found_next_to_the_style_files(tmp_path: Path) -> None:
    write_styles(tmp_path / "sdxl_styles_sai.json", [style("sai-3d-model", "{prompt}"), style("sai-other", "{prompt}")])
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "sai_3d_model.jpg").write_bytes(b"\xff\xd8jpeg")
    (tmp_path / "samples" / "random_style.jpg").write_bytes(b"\xff\xd8jpeg")
    library = StyleLibrary.load([tmp_path])
    assert library.preview_path("SAI 3D Model") == str(tmp_path / "samples" / "sai_3d_model.jpg")
    assert library.preview_path("SAI Other") is None
    assert library.preview_path("Random Style") == str(tmp_path / "samples" / "random_style.jpg")
    assert library.find_preview("sai_3d_model") == library.preview_path("SAI 3D Model")
    assert library.find_preview("../etc/passwd") is None
