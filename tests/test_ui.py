"""The accordion builds from the FIELDS table under gradio 4 (this environment) and gradio 3.41.2
(a second environment, `.venv-gradio3`, made on first use), for each imitated host."""

from __future__ import annotations

import html as html_module
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from headless_chromium import WEBUI_PAGE_FUNCTIONS, needs_chromium, page_results
from webui_fakes import gradio3_env, ui_probe

from lib_fooocus.params import FIELD_NAMES, FIELDS, FIELDS_BY_NAME
from lib_fooocus.webui import ui as fooocus_ui
from lib_fooocus.webui import ui_tools

HOSTS = ("a1111-1.6", "a1111-1.10", "forge-main")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gradio4_probe() -> dict:
    # A subprocess too, so the fake `modules` of the probe never meet the other tests' fakes.
    done = subprocess.run([sys.executable, str(REPO / "tests/webui_fakes/ui_probe.py"), *HOSTS],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.split("PROBE-JSON:", 1)[1])


@pytest.fixture(scope="module")
def gradio3_probe() -> dict:
    if os.environ.get("FOOOCUS_SKIP_GRADIO3") == "1":
        pytest.skip("FOOOCUS_SKIP_GRADIO3=1")
    python = gradio3_env.ensure_python()
    done = subprocess.run([str(python), str(REPO / "tests/webui_fakes/ui_probe.py"), *HOSTS],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.split("PROBE-JSON:", 1)[1])


def check_probe(probe: dict, major: str) -> None:
    for host in HOSTS:
        result = probe[host]
        assert result["gradio"].startswith(major)
        assert result["callbacks"] == {"ui_settings": 1, "app_started": 1, "infotext_pasted": 1, "before_ui": 1}
        for tab, built in result["tabs"].items():
            components = built["components"]
            assert len(components) == len(FIELDS)
            # the enable switch: InputAccordion where the host has one, a checkbox in a plain accordion else
            expected_switch = "Checkbox" if host == "a1111-1.6" else "InputAccordionImpl"
            assert components[0]["type"] == expected_switch
            assert components[0]["value"] is False
            for spec, component in zip(FIELDS[1:], components[1:]):
                assert component["elem_id"] == f"script_{tab}_fooocus_{spec.name}"
                assert component["label"] == spec.label
                if spec.kind is float:
                    assert component["type"] == "Slider"
                    assert (component["minimum"], component["maximum"], component["step"]) == (
                        spec.minimum, spec.maximum, spec.step)
                    assert component["value"] == spec.default
                elif spec.kind is bool:
                    assert component["type"] == "Checkbox"
                    assert component["value"] is spec.default
                elif spec.kind is str:  # the refiner checkpoint: "None" first, off by default
                    assert component["type"] == "Dropdown"
                    assert component["value"] == "None"
                else:
                    assert component["type"] == "CheckboxGroup"
                    # the library's own default selection (its Fooocus V2 entry is never preselected)
                    assert component["value"] == ["Clean Quality Negative"]
            assert built["defaults_again"] == [c["value"] for c in components]
            new_host = host != "a1111-1.6"
            assert built["infotext_fields"] == len(FIELDS) + (2 if new_host else 0)
            assert built["paste_api_fields"] == (["prompt", "negative_prompt"] if new_host else [])
            # the preview reads the tab's own prompt and seed, and strips extra-network tags
            assert built["preview"] == {"inputs_are_tab_boxes": True, "text": "expanded(a cat|1234)"}
            assert built["throwaway_uses_old_boxes"] is False
            # the status shows the service's status (its kind for the page's poller); Retry forgets a
            # failure and shows it anew; the preview and the refresh button (clicked by the page while
            # a download runs) read it again
            status = built["status"]
            retries = {key: int(re.search(r">status after (\d+) retries<", status[key]).group(1))
                       for key in ("value", "refresh_text", "retry_text")}
            assert 'data-state="idle"' in status["value"]
            assert status["retry_outputs_status"] is True and status["refresh_outputs_status"] is True
            # read before Retry: the refresh shows the state without retrying, Retry retries once
            assert retries["value"] == retries["refresh_text"] == retries["retry_text"] - 1
            assert status["preview_updates_status"] is True
            # the schedule plot: drawn from the tab's steps/CFG/sampler at build time, redrawn on
            # changes of those and of the three Fooocus sliders it depends on
            schedule = built["schedule"]
            assert "30 steps (Karras): CFG 7 → 9;" in schedule["initial"]
            assert schedule["host_inputs"] is True
            # drawn by the hidden redraw button; after each drawing the page checks it is still current
            assert schedule["drawn_by"] == [f"script_{tab}_fooocus_schedule_plot_redraw"]
            assert schedule["checked_after"] == [[True, False]]
            assert schedule["triggers"] == sorted(
                [f"{tab}_steps", f"{tab}_cfg_scale", f"{tab}_sampling"]
                + ([f"{tab}_scheduler"] if host == "forge-main" else [])
                + [f"script_{tab}_fooocus_{name}" for name in ("sharpness", "adaptive_cfg", "adm_scaler_end")]
            )
            assert "10 steps (Uniform): CFG 7 → 9;" in schedule["redrawn"]
            for part in ("styles_search", "styles_refresh", "styles_count", "expansion_license", "tooltips",
                         "expansion_status", "expansion_status_refresh", "expansion_retry", "refiner_refresh",
                         "refiner_group", "styles_cards", "defaults", "performance", "resolution", "import",
                         "import_fooocus", "import_csv"):
                assert f"script_{tab}_fooocus_{part}" in built["elem_ids"]
            check_tools(built["tools"], host, tab)
        # "starts open": the page configuration renders the InputAccordion open while its input
        # value, the API default, stays False (the page's script switches the input on)
        starts_open = result["starts_open"]
        assert starts_open["value"] is False
        if host != "a1111-1.6":
            assert starts_open["has_accordion"] and starts_open["accordion_open"] is True
            assert 'data-open="1"' in starts_open["carrier"]


def check_tools(tools: dict, host: str, tab: str) -> None:
    """The defaults row and the import group, as the probe saw them wired and answering."""
    ours = f"script_{tab}_fooocus_"
    forge = host == "forge-main"
    host_ids = [f"{tab}_sampling", *([f"{tab}_scheduler"] if forge else []), f"{tab}_steps", f"{tab}_cfg_scale",
                f"{tab}_width", f"{tab}_height"]
    enabled_id = ours + ("enabled" if host == "a1111-1.6" else "enabled-checkbox")  # InputAccordion: its input
    own_ids = [enabled_id] + [ours + n for n in ("sharpness", "adaptive_cfg", "adm_scaler_positive",
                                                  "adm_scaler_negative", "adm_scaler_end", "styles",
                                                  "refiner_checkpoint")]
    defaults = tools["defaults"]
    assert defaults["inputs"] == [ours + "performance"]
    assert defaults["outputs"][: len(host_ids)] == host_ids
    assert defaults["outputs"][len(host_ids):] == [*own_ids, ours + "resolution", ours + "defaults_note"]
    values = dict(zip(defaults["outputs"], defaults["quality"]))
    sampler = {"value": "DPM++ 2M SDE"} if forge else {"value": "DPM++ 2M SDE Karras"}
    assert values[f"{tab}_sampling"] == sampler
    if forge:
        assert values[f"{tab}_scheduler"] == {"value": "Karras"}
    assert values[f"{tab}_steps"] == {"value": 60}  # Quality
    assert values[f"{tab}_cfg_scale"] == {"value": 4.0}
    assert (values[f"{tab}_width"], values[f"{tab}_height"]) == ({"value": 1152}, {"value": 896})
    assert values[ours + "sharpness"] == {"value": 2.0} and values[ours + "adm_scaler_end"] == {"value": 0.3}
    assert values[ours + "styles"]["value"] == ["Fooocus V2"]  # Enhance and Sharp are not in this library
    assert values[ours + "refiner_checkpoint"] == {"value": "None"}
    assert values[ours + "resolution"] == {"value": "1152×896 (9:7)"}
    assert "Fooocus Enhance, Fooocus Sharp (not in the style library" in values[ours + "defaults_note"]
    # Speed/Quality and a picked resolution set the tab's steps and size in the page, no server call
    # (gradio 3.41 drops an event while its previous call waits in the queue: picks were lost on A1111)
    assert tools["performance"] == [{"event": "change", "inputs": [ours + "performance"], "outputs": [f"{tab}_steps"],
                                     "js": ui_tools.performance_steps_js(), "backend": False}]
    # the size on the user's pick only (`input`): a value the size sync or the defaults button
    # wrote into the dropdown never sets the size (a late sync set an old pick's size again)
    assert tools["resolution"] == [{"event": "input", "inputs": [ours + "resolution"],
                                    "outputs": [f"{tab}_width", f"{tab}_height"],
                                    "js": ui_tools.resolution_apply_js(), "backend": False}]
    # width or height changed by hand: the dropdown follows in the page, without a server call
    assert len(tools["resolution_sync"]) == 2
    for sync in tools["resolution_sync"]:
        assert sync["backend"] is False and sync["inputs"] == [f"{tab}_width", f"{tab}_height"]
        assert '"1152x896": "1152×896 (9:7)"' in sync["js"]
    picker_ids = [ours + n for n in ("styles", "styles_count", "styles_notes", "styles_cards")]
    assert tools["import_fooocus_outputs"] == [ours + "import_result", *picker_ids]
    csv_import = tools["import_csv"]
    assert csv_import["inputs"] == [ours + "import_csv_path", ours + "styles"]
    assert csv_import["outputs"] == [ours + "import_result", *picker_ids]
    line, styles, count, _notes, cards = csv_import["result"]
    assert line.startswith("host_styles.csv: 1 style(s) imported into a1111_host_styles.json.")  # the host's file
    assert styles == {"choices": ["Fooocus V2", "Random Style", "Warm Light", "Clean Quality Negative", "Host Look"],
                      "value": ["Warm Light"]}
    assert "1 style selected" in count and "Host Look" in cards
    # then the other tabs' pickers refresh, in the page (their own Refresh buttons)
    follow = [{"js": ui_tools.refresh_others_js(ours + "styles_refresh"), "backend": False}]
    assert tools["import_followers"] == {"fooocus": follow, "csv": follow}


def test_ui_builds_under_gradio4(gradio4_probe: dict) -> None:
    check_probe(gradio4_probe, "4.")


def test_ui_builds_under_gradio3(gradio3_probe: dict) -> None:
    check_probe(gradio3_probe, "3.41")


def test_layout_places_every_field_once() -> None:
    placed = [name for _kind, _title, names in fooocus_ui.LAYOUT for name in names]
    assert sorted(placed) == sorted(FIELD_NAMES[1:])
    assert len(placed) == len(set(placed))


def test_tooltip_carrier_holds_every_help_line_escaped() -> None:
    tips = {f"id_{spec.name}": spec.help for spec in FIELDS}
    tips["id_evil"] = '"><script>alert(1)</script>'
    html_text = fooocus_ui.tooltip_html(tips, "txt2img", open_on_load=True, accordion_id="acc")
    assert "<script>" not in html_text
    assert 'data-open="1"' in html_text and 'data-accordion="acc"' in html_text
    import re

    payload = re.search(r'data-tooltips="([^"]*)"', html_text).group(1)
    decoded = json.loads(html_module.unescape(payload))
    assert decoded == tips
    assert all(len(spec.help.splitlines()) == 1 for spec in FIELDS)


def test_preview_text_handles_seed_prompt_and_errors() -> None:
    calls = []

    def expand(text: str, seed: int) -> str:
        calls.append((text, seed))
        return "more words"

    assert fooocus_ui.preview_text("a dog", 7.0, expand, str.strip) == "more words"
    assert calls[-1] == ("a dog", 7)
    random_seed = fooocus_ui.preview_text("a dog", -1, expand, str.strip)
    assert random_seed.startswith("more words (random seed ")
    assert str(calls[-1][1]) in random_seed
    assert "Type a prompt" in fooocus_ui.preview_text("   ", 1, expand, str.strip)

    def missing(text: str, seed: int) -> str:
        raise RuntimeError("Fooocus V2 expansion is unavailable: missing in /m: config.json")

    assert "missing in /m: config.json" in fooocus_ui.preview_text("a dog", 1, missing, str.strip)


def test_license_line_names_the_licence_and_the_folder() -> None:
    text = fooocus_ui.LICENSE_LINE.format(folder="/models/prompt_expansion/fooocus_expansion")
    assert "CC BY-NC 4.0" in text and "never bundled" in text and "/models/prompt_expansion" in text
    assert FIELDS_BY_NAME["expansion"].label == "Fooocus V2 expansion"


def test_probe_module_is_importable_without_gradio_side_effects() -> None:
    assert callable(ui_probe.main_all)


# -- tooltips in a browser ------------------------------------------------------------------------


# gradio 4's InputAccordion markup (Forge main), trimmed: the header button with the visible
# checkbox, and the controls inside the accordion's body.
TOOLTIP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<script>
""" + WEBUI_PAGE_FUNCTIONS + """</script>
<script src="fooocus_ui.js"></script>
</head><body>
<div id="t_enabled" class="block gradio-accordion input-accordion">
  <button class="label-wrap"><span><input type="checkbox" id="t_enabled-visible-checkbox"> Fooocus</span></button>
  <div class="wrap">
    <div id="t_sharpness" class="block"><label><span data-testid="block-info">Sharpness</span>
      <input type="number"><input type="range"></label></div>
    <div id="t_styles_search" class="block"><label><span>Search styles</span><textarea></textarea></label></div>
    <button id="t_styles_refresh">Refresh</button>
    <div id="t_license" class="block"><span>licence line</span></div>
  </div>
</div>
__CARRIER__
<pre id="results"></pre>
<script>
  window.__loaded.forEach(function (callback) { callback(); });
  var title = function (selector) { var e = document.querySelector(selector); return e && e.getAttribute("title"); };
  document.getElementById("results").textContent = "RESULTS:" + JSON.stringify({
    header: title("#t_enabled .label-wrap"), header_box: title("#t_enabled-visible-checkbox"),
    container: title("#t_enabled"), sharpness_label: title("#t_sharpness span"),
    sharpness_input: title("#t_sharpness input"), search: title("#t_styles_search textarea"),
    refresh: title("#t_styles_refresh"), license: title("#t_license span")
  });
</script>
</body></html>
"""


@needs_chromium
def test_each_control_shows_its_own_tooltip_in_headless_chromium(tmp_path: Path) -> None:
    # Seen on real Forge main: the accordion's help went onto every label inside it, so hovering
    # "Sharpness" showed "Turn on the Fooocus tricks ..." instead of the slider's own line.
    tips = {"t_enabled": FIELDS_BY_NAME["enabled"].help, "t_sharpness": FIELDS_BY_NAME["sharpness"].help,
            "t_styles_search": fooocus_ui.STYLE_SEARCH_HELP, "t_styles_refresh": fooocus_ui.STYLE_REFRESH_HELP}
    page = TOOLTIP_PAGE.replace("__CARRIER__", fooocus_ui.tooltip_html(tips, "txt2img"))
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    shutil.copy(REPO / "javascript" / "fooocus_ui.js", tmp_path)
    results = page_results((tmp_path / "index.html").as_uri(), tmp_path / "profile", budget_ms=5000,
                           extra_flags=("--allow-file-access-from-files",))
    enabled_help = FIELDS_BY_NAME["enabled"].help
    assert results["header"] == enabled_help and results["header_box"] == enabled_help
    assert results["container"] is None
    assert results["sharpness_label"] == FIELDS_BY_NAME["sharpness"].help
    assert results["sharpness_input"] == FIELDS_BY_NAME["sharpness"].help
    assert results["search"] == fooocus_ui.STYLE_SEARCH_HELP
    assert results["refresh"] == fooocus_ui.STYLE_REFRESH_HELP
    assert results["license"] is None


# Forge main's page at load, trimmed. Gradio 4 renders the InputAccordion from the page
# configuration (`__OPEN__`, the input's value False) and runs the page-load events (`__LOAD__`: the
# values they put into the input). The host's `inputAccordion.js` (copied below, trimmed) comes
# before the extensions' scripts, so its onUiLoaded callback runs first. A moment after load gradio
# re-applies the components' configured props: seen on real Forge main, the accordion's `open`
# class went away ~1 s after a script's click (no click event), and every InputAccordion input got
# a change event with its configured value; a value set only through the page (`updateInput`) is
# not kept, one set by a load event is.
FORGE_ACCORDION_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<script>
""" + WEBUI_PAGE_FUNCTIONS + """  window.__stored = false;  // the input's value in gradio's store (configuration, load events)
  window.__value = false;   // the input's current value
  function gradioSetValue(checked, store) {  // gradio sets the value; .change() calls the host
    window.__value = checked;
    if (store) { window.__stored = checked; }
    document.querySelector("#__ID__-checkbox input").checked = checked;
    setTimeout(function () { inputAccordionChecked("__ID__", checked); }, 0);
  }
  window.updateInput = function (target) {  // the host's: the page tells gradio the box changed
    if (target.checked !== window.__value) { gradioSetValue(target.checked, false); }
  };
  function inputAccordionChecked(id, checked) {
    var accordion = gradioApp().getElementById(id);
    accordion.visibleCheckbox.checked = checked;
    accordion.onVisibleCheckboxChange();
  }
  function setupAccordion(accordion) {
    var labelWrap = accordion.querySelector(".label-wrap");
    var gradioCheckbox = gradioApp().querySelector("#" + accordion.id + "-checkbox input");
    var span = labelWrap.querySelector("span");
    var linked = true;
    var isOpen = function () { return labelWrap.classList.contains("open"); };
    new MutationObserver(function (mutations) {
      mutations.forEach(function () {
        accordion.classList.toggle("input-accordion-open", isOpen());
        if (linked) {
          accordion.visibleCheckbox.checked = isOpen();
          accordion.onVisibleCheckboxChange();
        }
      });
    }).observe(labelWrap, {attributes: true, attributeFilter: ["class"]});
    var visibleCheckbox = document.createElement("INPUT");
    visibleCheckbox.type = "checkbox";
    visibleCheckbox.checked = isOpen();
    visibleCheckbox.id = accordion.id + "-visible-checkbox";
    span.insertBefore(visibleCheckbox, span.firstChild);
    accordion.visibleCheckbox = visibleCheckbox;
    accordion.onVisibleCheckboxChange = function () {
      if (linked && isOpen() != visibleCheckbox.checked) {
        labelWrap.click();
      }
      gradioCheckbox.checked = visibleCheckbox.checked;
      updateInput(gradioCheckbox);
    };
    visibleCheckbox.addEventListener("click", function (event) { linked = false; event.stopPropagation(); });
    visibleCheckbox.addEventListener("input", accordion.onVisibleCheckboxChange);
  }
  onUiLoaded(function () {
    for (var accordion of gradioApp().querySelectorAll(".input-accordion")) { setupAccordion(accordion); }
  });
</script>
<script src="fooocus_ui.js"></script>
</head><body>
<div id="__ID__-checkbox" class="block gradio-checkbox hidden"><input type="checkbox"></div>
<div id="__ID__" class="block gradio-accordion input-accordion">
  <button class="label-wrap"><span>Fooocus</span><span class="icon">&#9660;</span></button>
  <div><div id="t_sharpness" class="block"><label><span>Sharpness</span><input type="range"></label></div>
  __CARRIER__</div>
</div>
<pre id="results"></pre>
<script>
  var configuredOpen = __OPEN__;
  var label = document.querySelector("#__ID__ .label-wrap");
  label.classList.toggle("open", configuredOpen);  // svelte's class:open from the configuration
  label.addEventListener("click", function () { label.classList.toggle("open"); });  // open = !open
  window.__loaded.forEach(function (callback) { callback(); });
  setTimeout(function () {
    __LOAD__.forEach(function (value) { gradioSetValue(value, true); });  // the page-load events
    setTimeout(function () {
      label.classList.toggle("open", configuredOpen);  // gradio re-applies the configured props
      gradioSetValue(window.__stored, false);
      setTimeout(function () {
        document.getElementById("results").textContent = "RESULTS:" + JSON.stringify({
          open: label.classList.contains("open"),
          visible_checked: document.getElementById("__ID__-visible-checkbox").checked,
          gradio_value: window.__value
        });
      }, 200);
    }, 400);
  }, 100);
</script>
</body></html>
"""


@needs_chromium
def test_starts_open_setting_opens_and_enables_the_accordion_on_forge_main(gradio4_probe: dict, tmp_path: Path) -> None:
    # Seen on real Forge main (issue #10, item 16): with "starts open" on, the script's click opened
    # the accordion, then gradio put back the configured open=False and the host unchecked it.
    built = gradio4_probe["forge-main"]["starts_open"]
    load_values = []
    for js, backend in built["load_sets_on"]:
        assert backend is False and js.replace(" ", "") == "()=>true"
        load_values.append(True)
    page = (FORGE_ACCORDION_PAGE.replace("__CARRIER__", built["carrier"])
            .replace("__OPEN__", "true" if built["accordion_open"] else "false")
            .replace("__LOAD__", json.dumps(load_values))
            .replace("__ID__", built["accordion_id"]))
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    shutil.copy(REPO / "javascript" / "fooocus_ui.js", tmp_path)
    results = page_results((tmp_path / "index.html").as_uri(), tmp_path / "profile", budget_ms=5000,
                           extra_flags=("--allow-file-access-from-files",))
    assert results == {"open": True, "visible_checked": True, "gradio_value": True}
    assert built["value"] is False  # the API default is unchanged


# -- the live expansion status in a browser -------------------------------------------------------------

# Both tabs' status blocks as gradio renders them (an HTML block, its refresh button). The refresh
# buttons count the clicks the page's script makes; txt2img's turns "ready" after three (the
# download is over), img2img's stays "idle" until its Generate button is pressed.
STATUS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<script>
""" + WEBUI_PAGE_FUNCTIONS + """</script>
<script src="fooocus_ui.js"></script>
</head><body>
<div id="script_txt2img_fooocus_expansion_status" class="block"><div class="prose">__BUSY__</div></div>
<button id="script_txt2img_fooocus_expansion_status_refresh">refresh</button>
<div id="script_img2img_fooocus_expansion_status" class="block"><div class="prose">__IDLE__</div></div>
<button id="script_img2img_fooocus_expansion_status_refresh">refresh</button>
<button id="img2img_generate">Generate</button>
<pre id="results"></pre>
<script>
  var clicks = {txt2img: 0, img2img: 0};
  ["txt2img", "img2img"].forEach(function (tab) {
    document.getElementById("script_" + tab + "_fooocus_expansion_status_refresh").addEventListener("click", function () {
      clicks[tab] += 1;
      if (tab === "txt2img" && clicks.txt2img === 3) {
        document.querySelector("#script_txt2img_fooocus_expansion_status .prose").innerHTML = __READY__;
      }
    });
  });
  window.__loaded.forEach(function (callback) { callback(); });
  var seen = {};
  function at(ms, fn) { setTimeout(fn, ms); }
  at(10000, function () { seen.at_10s = JSON.parse(JSON.stringify(clicks));
    document.getElementById("img2img_generate").click(); });
  at(25000, function () { seen.at_25s = JSON.parse(JSON.stringify(clicks)); });
  at(45000, function () { seen.at_45s = JSON.parse(JSON.stringify(clicks)); });
  at(60000, function () { seen.at_60s = JSON.parse(JSON.stringify(clicks));
    document.getElementById("results").textContent = "RESULTS:" + JSON.stringify(seen); });
</script>
</body></html>
"""


@needs_chromium
def test_status_is_polled_only_while_busy_or_just_after_a_start_in_headless_chromium(tmp_path: Path) -> None:
    from lib_fooocus.expansion.service import BUSY, IDLE, READY, ExpansionState

    busy = fooocus_ui.status_html(ExpansionState(BUSY, "downloading tokenizer.json (2/8): 1 kB of 2 kB (50%)", 0.5))
    idle = fooocus_ui.status_html(ExpansionState(IDLE, "not loaded yet"))
    ready = fooocus_ui.status_html(ExpansionState(READY, "ready (on cpu)."))
    page = (STATUS_PAGE.replace("__BUSY__", busy).replace("__IDLE__", idle)
            .replace("__READY__", json.dumps(ready)))
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    shutil.copy(REPO / "javascript" / "fooocus_ui.js", tmp_path)
    seen = page_results((tmp_path / "index.html").as_uri(), tmp_path / "profile", budget_ms=70000,
                        extra_flags=("--allow-file-access-from-files",))
    # busy: refreshed until the state says ready, then no more; idle: never refreshed on its own
    assert seen["at_10s"] == {"txt2img": 3, "img2img": 0}
    # after Generate (which may start a download) every shown status is refreshed for a while...
    assert seen["at_25s"]["img2img"] >= 10
    # ...and then no more while nothing is busy
    assert seen["at_60s"] == seen["at_45s"]
    assert seen["at_45s"]["img2img"] <= 31


def test_status_html_escapes_the_text_and_draws_the_progress() -> None:
    from lib_fooocus.expansion.service import BUSY, UNAVAILABLE, ExpansionState

    busy = fooocus_ui.status_html(ExpansionState(BUSY, "downloading <b>x</b>: 1 kB of 3 kB (33%)", 1 / 3))
    assert 'data-state="busy"' in busy and '<progress class="fooocus-expansion-status-bar" max="100" value="33">' in busy
    assert "<b>" not in busy and "&lt;b&gt;x&lt;/b&gt;" in busy
    failed = fooocus_ui.status_html(ExpansionState(UNAVAILABLE, "unavailable: missing in /m"))
    assert 'data-state="unavailable"' in failed and "<progress" not in failed
    assert 'data-state="idle"' in fooocus_ui.status_html("a plain status line")
