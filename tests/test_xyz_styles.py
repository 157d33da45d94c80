"""The X/Y/Z Styles axis: cells split like the host splits them (CSV with quoting), style
combinations per cell, Random Style pinned to a shown seed (reproducible, the same pick as the
accordion's Random Style for that image seed), labels, and what reaches the generation."""

from __future__ import annotations

import csv
import io
import random
import types
from itertools import chain

import pytest

from lib_fooocus.styles.library import StyleLibrary
from lib_fooocus.webui import xyz
from lib_fooocus.webui.generation import INFOTEXT_RANDOM_STYLE_KEY, infotext_entries, rewrite_prompts
from lib_fooocus.webui.script_args import xyz_overrides

NAMES = ["Warm Light", "Cinematic", "Pixel Art", "Ink, Wash", "Noir", "Retro Wave", "Fooocus Sharp", "Pen + Ink"]
LIBRARY = StyleLibrary.from_styles([{"name": n, "prompt": "{prompt}, " + n.lower()} for n in NAMES])


def host_split(text: str) -> list[str]:
    """The host's `csv_string_to_list_strip` (xyz_grid.py), written out: CSV, quotes honoured."""
    return [cell.strip() for cell in chain.from_iterable(csv.reader(io.StringIO(text), skipinitialspace=True))]


def axis():
    module = types.SimpleNamespace(AxisOption=lambda label, type, apply, **kw: types.SimpleNamespace(
        label=label, type=type, apply=apply, **kw))
    options = xyz.axis_options(module, lambda: LIBRARY, None)
    return next(option for option in options if option.label == xyz.STYLE_AXIS_LABEL)


def run_axis(text: str, seed: int) -> tuple[list[str], list[str], list[list[str]]]:
    """What the host's X/Y/Z does with the axis: split, confirm (which may rewrite the list in
    place), format the labels, apply each cell to its own copy of p."""
    option = axis()
    cells = [option.type(x) for x in host_split(text)]
    p = types.SimpleNamespace(seed=seed)
    option.confirm(p, cells)
    labels = [option.format_value(p, option, cell) for cell in cells]
    applied = []
    for cell in cells:
        copy = types.SimpleNamespace(**vars(p))
        option.apply(copy, cell, cells)
        applied.append(xyz_overrides(copy)["styles"])
    return cells, labels, applied


def test_combinations_and_quoted_cells() -> None:
    _cells, labels, applied = run_axis(
        'Warm Light + cinematic, "Ink, Wash + Noir", None, , Fooocus V2 + Pixel Art, Pen + Ink', 7)
    assert applied == [["Warm Light", "Cinematic"], ["Ink, Wash", "Noir"], [], [], ["Fooocus V2", "Pixel Art"],
                       ["Pen + Ink"]]  # a name holding "+" is one style
    assert labels == ["Warm Light + Cinematic", "Ink, Wash + Noir", "None", "None", "Fooocus V2 + Pixel Art",
                      "Pen + Ink"]


def test_unknown_names_stop_the_plot_before_it_starts() -> None:
    with pytest.raises(RuntimeError, match=r"unknown style name\(s\) 'Nope', 'Ink'"):
        run_axis("Warm Light + Nope, Ink, Noir", 1)


def test_random_style_uses_the_plot_seed_then_the_next_seeds() -> None:
    cells, labels, applied = run_axis("Random Style, Noir + random style, Random Style (seed 42)", 1234)
    picks = [LIBRARY.random_style(s) for s in (1234, 1235, 42)]
    # the same pick the accordion's Random Style makes for an image with that seed
    assert picks == [LIBRARY.assemble_lines("x", [], "", [], ["Random Style"], s).styles[0] for s in (1234, 1235, 42)]
    assert picks[0] == random.Random(1234).choice(NAMES)
    assert labels == [f"Random Style (seed 1234: {picks[0]})", f"Noir + Random Style (seed 1235: {picks[1]})",
                      f"Random Style (seed 42: {picks[2]})"]
    assert cells == labels  # confirm rewrote the host's list: the label is the value
    assert applied == [[picks[0]], ["Noir", picks[1]], [picks[2]]]


def test_random_style_is_reproducible_and_a_label_can_be_pasted_back() -> None:
    first = run_axis("Random Style, Random Style, Random Style", 99)
    again = run_axis("Random Style, Random Style, Random Style", 99)
    assert first == again
    assert len({tuple(a) for a in first[2]}) > 1  # different seeds per cell, so (here) different styles
    pasted = run_axis(",".join(f'"{label}"' for label in first[1]), 5)  # labels typed back: same cells
    assert pasted[1] == first[1] and pasted[2] == first[2]


def test_random_style_without_a_fixed_seed_shows_the_seed_it_drew() -> None:
    seeds = []
    for _ in range(2):
        _cells, labels, applied = run_axis("Random Style", -1)  # "Keep -1 for seeds"
        seeds.append(int(labels[0].split("seed ", 1)[1].split(":", 1)[0]))
        assert applied == [[LIBRARY.random_style(seeds[-1])]]
    assert seeds[0] != seeds[1]  # drawn anew each time (equal with chance 2**-32)


def test_a_cell_not_seen_by_confirm_is_labelled_and_applied_alike() -> None:
    option = axis()
    p = types.SimpleNamespace(seed=77)
    label = option.format_value(p, option, "Random Style + Noir")
    option.apply(p, "Random Style + Noir", [])
    assert label == f"Random Style (seed 77: {LIBRARY.random_style(77)}) + Noir"
    assert xyz_overrides(p)["styles"] == [LIBRARY.random_style(77), "Noir"]


def test_accordion_random_style_names_its_pick_per_image_in_the_infotext() -> None:
    p = types.SimpleNamespace(all_prompts=["a cat", "a cat"], all_negative_prompts=["", ""], all_seeds=[5, 6],
                              batch_size=2)
    params = types.SimpleNamespace(styles=("Noir", "Random Style"), expansion=False, to_infotext=dict)
    rewrite = rewrite_prompts(p, params, LIBRARY, None)
    picks = [LIBRARY.random_style(5), LIBRARY.random_style(6)]
    assert rewrite.random_styles == picks
    entries = infotext_entries(params, rewrite)
    assert entries[INFOTEXT_RANDOM_STYLE_KEY] == (picks if picks[0] != picks[1] else picks[0])
    assert p.all_prompts[0].endswith(f"{picks[0].lower()}")


def test_a_picked_name_holding_a_plus_stays_one_entry() -> None:
    seed = next(s for s in range(10_000) if LIBRARY.random_style(s) == "Pen + Ink")
    cells, labels, applied = run_axis(f"Random Style (seed {seed}) + Noir", 3)
    assert labels == [f"Random Style (seed {seed}: Pen + Ink) + Noir"]
    assert applied == [["Pen + Ink", "Noir"]]
    assert run_axis(f'"{labels[0]}"', 3)[2] == applied  # the label typed back as a cell
