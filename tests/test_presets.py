"""The "Fooocus defaults" row: Fooocus's 26 SDXL resolutions, the preset values per host (sampler and
schedule type, or the combined sampler), Speed/Quality, and the callbacks' outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from headless_chromium import needs_chromium, page_results

from lib_fooocus.webui import presets, ui_tools
from lib_fooocus.webui.ui_tools import defaults_updates

# Fooocus's resolution table as the project's spec lists it (§8.4), transcribed independently.
SPEC_TABLE = (
    "704×1408 (1:2), 704×1344 (11:21), 768×1344 (4:7), 768×1280 (3:5), 832×1216 (13:19), 832×1152 (13:18), "
    "896×1152 (7:9), 896×1088 (14:17), 960×1088 (15:17), 960×1024 (15:16), 1024×1024 (1:1), 1024×960 (16:15), "
    "1088×960 (17:15), 1088×896 (17:14), 1152×896 (9:7), 1152×832 (18:13), 1216×832 (19:13), 1280×768 (5:3), "
    "1344×768 (7:4), 1344×704 (21:11), 1408×704 (2:1), 1472×704 (23:11), 1536×640 (12:5), 1600×640 (5:2), "
    "1664×576 (26:9), 1728×576 (3:1)"
)


def update(**kwargs):
    return kwargs


def test_resolution_table_is_fooocus_s_26_sizes() -> None:
    labels = [r.label for r in presets.FOOOCUS_RESOLUTIONS]
    assert labels == SPEC_TABLE.split(", ")
    assert len(labels) == 26
    for r in presets.FOOOCUS_RESOLUTIONS:
        divisor = math.gcd(r.width, r.height)
        assert r.ratio == f"{r.width // divisor}:{r.height // divisor}"
        assert r.width % 64 == 0 and r.height % 64 == 0
        assert 0.9e6 < r.width * r.height < 1.1e6
    assert presets.DEFAULT_RESOLUTION in presets.FOOOCUS_RESOLUTIONS


def test_label_for_size_names_only_the_table_s_sizes() -> None:
    assert presets.label_for_size(896.0, "1152") == "896×1152 (7:9)"
    assert presets.label_for_size(1152, 1152) is None
    assert presets.label_for_size("x", 1) is None


@needs_chromium
def test_page_code_of_the_dropdown_and_speed_quality(tmp_path: Path) -> None:
    """The row's page-only events (no server round trip, see ui_tools): a picked entry gives its size,
    none or an unknown one leaves the tab's alone; a size gives its entry or none; Speed/Quality their steps."""
    labels = SPEC_TABLE.split(", ")
    page = f"""<!doctype html><meta charset="utf-8"><pre id="out"></pre><script>
    const apply = {ui_tools.resolution_apply_js()};
    const sync = {ui_tools.resolution_sync_js()};
    const steps = {ui_tools.performance_steps_js()};
    const labels = {json.dumps(labels)};
    const out = {{
        picked: labels.map(label => apply(label)),
        kept: [apply(null), apply("1000×1000"), apply("")],
        followed: labels.map(label => label.split(" ")[0].split("×").map(Number)).map(([w, h]) => sync(w, h)),
        rounded: sync(1343.6, 768.2), unknown: [sync(1000, 1000), sync(768, 1344.9)],
        steps: [steps("Speed"), steps("Quality"), steps(null)],
    }};
    document.getElementById("out").textContent = "RESULTS:" + JSON.stringify(out);
    </script>"""
    (tmp_path / "page.html").write_text(page, encoding="utf-8")
    results = page_results((tmp_path / "page.html").as_uri(), tmp_path / "profile", budget_ms=2000)
    sizes = [[int(n) for n in label.split(" ")[0].split("×")] for label in labels]
    assert results["picked"] == sizes
    # no change (empty updates), not values read when the event fired: they may be old when it lands
    assert results["kept"] == [[{"__type__": "update"}, {"__type__": "update"}]] * 3
    assert results["followed"] == labels
    assert results["rounded"] == "1344×768 (7:4)" and results["unknown"] == [None, None]
    assert results["steps"] == [30, 60, 30]


@pytest.mark.parametrize(("samplers", "schedulers", "expected"), [
    # Forge main / A1111 1.9+: the sampler and a separate schedule type (choices as gradio 4 pairs)
    ([("Euler", "Euler"), ("DPM++ 2M SDE", "DPM++ 2M SDE")], [("Automatic", "automatic"), ("Karras", "Karras")],
     ("DPM++ 2M SDE", "Karras")),
    # A1111 1.7: no schedule type control, the combined sampler
    (["Euler", "DPM++ 2M SDE", "DPM++ 2M SDE Karras"], None, ("DPM++ 2M SDE Karras", None)),
    # a schedule type list without Karras: fall back to the combined name when offered
    (["DPM++ 2M SDE", "DPM++ 2M SDE Karras"], ["Automatic"], ("DPM++ 2M SDE Karras", None)),
    (["Euler"], ["Karras"], (None, None)),
])
def test_sampler_in_the_tab_s_terms(samplers, schedulers, expected) -> None:
    choice = presets.fooocus_sampler(samplers, schedulers)
    assert (choice.sampler, choice.scheduler) == expected
    assert bool(choice.note) == (expected[0] is None)


def test_defaults_button_outputs_follow_the_controls_found() -> None:
    sampler = type("C", (), {"choices": ["Euler", "DPM++ 2M SDE"]})()
    scheduler = type("C", (), {"choices": ["Automatic", "Karras"]})()
    host = {"sampler": sampler, "scheduler": scheduler, "steps": object(), "cfg_scale": object()}  # no width/height
    own = ["enabled", "sharpness", "adm_scaler_end", "styles", "refiner_checkpoint"]
    styles = ["Fooocus V2", "Random Style", "Fooocus Sharp", "Fooocus Enhance", "Other"]
    out = defaults_updates(update, host, own, styles, presets.SPEED)
    assert out[:4] == [{"value": "DPM++ 2M SDE"}, {"value": "Karras"}, {"value": 30}, {"value": 4.0}]
    assert out[4:9] == [{"value": True}, {"value": 2.0}, {"value": 0.3},
                        {"choices": styles, "value": ["Fooocus V2", "Fooocus Enhance", "Fooocus Sharp"]},
                        {"value": "None"}]
    assert out[9] == {}  # no width/height on the page: the resolution dropdown is left alone
    assert out[10].startswith("Fooocus defaults set: DPM++ 2M SDE + Karras; 30 steps; CFG 4; styles: Fooocus V2")
    assert "Not set: the tab's width (not found on the page)" in out[10]
    quality = defaults_updates(update, {"steps": object()}, [], styles, presets.QUALITY)
    assert quality[0] == {"value": 60}


def test_presets_are_fooocus_s_values() -> None:
    assert presets.PERFORMANCE_STEPS == {"Speed": 30, "Quality": 60}
    assert presets.FOOOCUS_CFG == 4.0
    assert (presets.DEFAULT_RESOLUTION.width, presets.DEFAULT_RESOLUTION.height) == (1152, 896)
    plan = presets.fooocus_defaults([], None, None, ["Fooocus V2", "Fooocus Sharp"])
    assert plan.values["styles"] == ["Fooocus V2", "Fooocus Sharp"]
    assert {k: plan.values[k] for k in presets.TRICK_FIELDS} == {
        "sharpness": 2.0, "adaptive_cfg": 7.0, "adm_scaler_positive": 1.5, "adm_scaler_negative": 0.8,
        "adm_scaler_end": 0.3}
