"""Our own style library in `styles/`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib_fooocus.styles.assembly import plan_prompt
from lib_fooocus.styles.library import (
    BUNDLED_STYLES_DIR,
    OWN_DEFAULT_SELECTION,
    PLACEHOLDER,
    SPECIAL_NAMES,
    StyleLibrary,
    normalize_name,
)

STYLE_FILES = sorted(BUNDLED_STYLES_DIR.glob("*.json"))
FAMILY_WORDS = ("essentials", "film", "lens", "lighting", "cinematic", "illustration", "anime", "painting",
                "render", "design", "craft", "game", "era")


def entries_of(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def all_entries() -> list[tuple[Path, dict]]:
    return [(path, entry) for path in STYLE_FILES for entry in entries_of(path)]


def test_every_family_has_its_own_file() -> None:
    for word in FAMILY_WORDS:
        assert any(word in path.name for path in STYLE_FILES), word


@pytest.mark.parametrize("path", STYLE_FILES, ids=lambda p: p.name)
def test_file_is_a_valid_list_of_style_objects(path: Path) -> None:
    entries = entries_of(path)
    assert isinstance(entries, list)
    assert entries
    for entry in entries:
        assert set(entry) <= {"name", "prompt", "negative_prompt", "negative_only"}
        assert all(isinstance(entry[key], str) for key in ("name", "prompt", "negative_prompt"))


def test_at_least_120_styles_with_unique_stable_names() -> None:
    names = [entry["name"] for _, entry in all_entries()]
    assert len(names) >= 120
    assert len(set(names)) == len(names)
    # names are already in Fooocus's normalised form, so what users see is what the files say
    assert [normalize_name(n) for n in names] == names
    assert not set(names) & set(SPECIAL_NAMES)


def test_every_style_has_one_placeholder_or_is_explicitly_negative_only() -> None:
    for path, entry in all_entries():
        where = f"{path.name}: {entry['name']}"
        assert PLACEHOLDER not in entry["negative_prompt"], where
        assert entry["negative_prompt"].strip(), f"{where} has no negative"
        assert "\n" not in entry["prompt"] + entry["negative_prompt"], where
        if entry.get("negative_only"):
            assert entry["prompt"] == "", where
        else:
            assert entry["prompt"].count(PLACEHOLDER) == 1, where


def test_the_three_roles_of_fooocus_defaults_exist() -> None:
    library = StyleLibrary.load([BUNDLED_STYLES_DIR])
    assert library.warnings == []
    assert library.overrides == []
    negative_only = [s for s in library.styles.values() if s.prompt == "" and s.negative_prompt != ""]
    assert negative_only
    assert library.default_selection() == list(OWN_DEFAULT_SELECTION)
    assert library.styles["Clean Quality Negative"] in negative_only
    assert library.styles["Crisp Cinematic Still"].has_placeholder
    assert library.styles["True Photograph"].prompt.startswith("photograph of {prompt}")
    plan = plan_prompt(library, "a lighthouse", "", list(OWN_DEFAULT_SELECTION))
    positive, negative = plan.positive_parts, plan.negative_parts
    assert len(positive) == 1
    assert "a lighthouse" in positive[0]
    assert len(negative) == 2  # both style negatives; the empty user negative is dropped
