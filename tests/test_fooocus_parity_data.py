"""The Fooocus parity reference data (tests/data/fooocus_parity) is whole and matches its case table, and our
prompt assembly produces the workloads Fooocus's own code produced for the same inputs."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "parity"))

from cases import CASES, DATA_DIR, STYLES_DIR, WORKLOAD_CASES

from lib_fooocus.styles.assembly import plan_single_prompt
from lib_fooocus.styles.library import StyleLibrary

BUDGET_BYTES = 8 * 1024 * 1024
METADATA = DATA_DIR / "metadata.json"
WORKLOADS = DATA_DIR / "workloads.json"


def load(path: Path) -> dict:
    if not path.is_file():
        pytest.skip(f"{path} not made yet")
    return json.loads(path.read_text(encoding="utf-8"))


def test_reference_data_stays_within_its_budget() -> None:
    total = sum(p.stat().st_size for p in DATA_DIR.rglob("*") if p.is_file())
    assert total <= BUDGET_BYTES, f"{total} bytes in {DATA_DIR}"


def test_every_case_of_the_table_has_reference_data_made_from_the_same_row() -> None:
    metadata = load(METADATA)
    assert sorted(metadata["cases"]) == sorted(case.name for case in CASES)
    for case in CASES:
        recorded = metadata["cases"][case.name]
        assert recorded["case"] == json.loads(json.dumps(case.to_dict())), f"{case.name}: remake the references"
        png = DATA_DIR / f"{case.name}.png"
        assert hashlib.sha256(png.read_bytes()).hexdigest() == recorded["png_sha256"]
        assert (DATA_DIR / f"{case.name}.safetensors").is_file()
        assert recorded["seed_used"] == case.seed
        assert len(recorded["sigmas"]) == case.steps + 1


def our_parts(prompt: str, negative: str, styles: tuple[str, ...], seed: int) -> tuple[list[str], list[str]]:
    library = StyleLibrary.load([STYLES_DIR])
    plan = plan_single_prompt(library, prompt, negative, list(styles), seed)
    return plan.positive_parts, plan.negative_parts


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_prompt_plan_gives_fooocus_workloads_for_the_image_cases(case) -> None:
    recorded = load(METADATA)["cases"][case.name]
    positive, negative = our_parts(case.prompt, case.negative, case.styles, case.seed)
    fooocus_positive = recorded["positive_workloads"][: recorded["positive_pool_count"]]
    assert positive == fooocus_positive
    assert negative == recorded["negative_workloads"]
    assert len(negative) == recorded["negative_pool_count"]


@pytest.mark.parametrize("case", WORKLOAD_CASES, ids=[c.name for c in WORKLOAD_CASES])
def test_prompt_plan_gives_fooocus_workloads(case) -> None:
    recorded = {c["name"]: c for c in load(WORKLOADS)["cases"]}[case.name]
    positive, negative = our_parts(case.prompt, case.negative, case.styles, case.seed)
    assert positive == recorded["positive_workloads"][: recorded["positive_pool_count"]]
    assert negative == recorded["negative_workloads"]


def test_expansion_reference_was_made_with_the_pinned_small_files_and_stores_no_expansion_text() -> None:
    """The expansion case ran Fooocus with Fooocus's own small files (the ones the extension pins, so a host
    accepts them) and seeded weights; their word list is CC BY-NC, so only a digest of the text is kept."""
    from lib_fooocus.expansion.files import SMALL_FILES

    recorded = load(METADATA)["cases"]["expansion"]
    files = recorded["expansion_model"]["sha256"]
    assert {name: files[name] for name in SMALL_FILES} == SMALL_FILES
    assert len(files["model.safetensors"]) == 64
    assert len(recorded["expansion_sha256"]) == 64 and "expansion" not in recorded
    assert len(recorded["positive_workloads"]) == recorded["positive_pool_count"]  # the expansion left out


def test_no_file_of_fooocus_expansion_model_is_kept_in_the_repository() -> None:
    from lib_fooocus.expansion.files import SMALL_FILES

    repo = DATA_DIR.parents[2]
    pinned = set(SMALL_FILES.values())
    found = []
    for folder, subfolders, names in os.walk(repo):
        subfolders[:] = [name for name in subfolders if not name.startswith(".") and name != "__pycache__"]
        for name in names:
            path = Path(folder) / name
            if path.stat().st_size <= BUDGET_BYTES and hashlib.sha256(path.read_bytes()).hexdigest() in pinned:
                found.append(str(path.relative_to(repo)))
    assert not found, f"Fooocus's expansion files (CC BY-NC) must not be stored here: {found}"
