"""The style picker: gradio components (built under the installed gradio) and the browser script,
driven in headless Chromium on a static page that imitates gradio's CheckboxGroup markup."""

from __future__ import annotations

import functools
import html as html_module
import http.server
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from headless_chromium import WEBUI_PAGE_FUNCTIONS, needs_chromium, page_results
from local_server import serving

from lib_fooocus.styles.library import REPO_ROOT, StyleLibrary
from lib_fooocus.webui.style_picker import (
    GROUP_CLASS,
    card_data,
    cards_html,
    count_html,
    kept_selection,
    notes_html,
    refresh_outputs,
)


def make_library(*names: str, warnings: tuple[str, ...] = ()) -> StyleLibrary:
    library = StyleLibrary.from_styles([{"name": n, "prompt": "{prompt}, " + n.lower()} for n in names])
    library.warnings.extend(warnings)
    return library


def test_count_and_notes_are_escaped_text() -> None:
    assert "2 styles selected" in count_html(["a", "b"])
    assert "1 style selected" in count_html(["a"])
    assert "0 styles selected" in count_html(None)
    tricky = count_html(['<b>"x"</b>', "Warm"])
    assert "<b>" not in tricky
    order = re.search(r'data-order="([^"]*)"', tricky).group(1)
    assert json.loads(html_module.unescape(order)) == ['<b>"x"</b>', "Warm"]
    notes = notes_html(['file <script>alert(1)</script>.json: "bad"'])
    assert "<script>" not in notes
    assert "&lt;script&gt;" in notes
    assert notes_html([]) == ""


def test_refresh_keeps_the_surviving_selection_in_order() -> None:
    new = make_library("Beta", "Gamma", warnings=("w <1>",))
    update, count, notes, cards = refresh_outputs(["Gamma", "Alpha", "Fooocus V2", "Beta"], lambda: new, dict)
    assert update == {"choices": ["Fooocus V2", "Random Style", "Beta", "Gamma"], "value": ["Gamma", "Fooocus V2", "Beta"]}
    assert "3 styles selected" in count
    assert "w &lt;1&gt;" in notes
    assert kept_selection(None, new) == []
    assert "Gamma" in cards and "Alpha" not in cards  # the cards follow the new library


def test_cards_cover_styles_without_a_preview_and_are_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "styles"
    (folder / "samples").mkdir(parents=True)
    (folder / "a.json").write_text(json.dumps([
        {"name": "With Image", "prompt": "{prompt}, img"},
        {"name": "Text Only", "prompt": '<script>alert("x")</script> {prompt}', "negative_prompt": "a & b"},
    ]), encoding="utf-8")
    (folder / "samples" / "with_image.jpg").write_bytes(b"jpg")
    (folder / "samples" / "random_style.jpg").write_bytes(b"jpg")
    library = StyleLibrary.load([folder])
    cards = card_data(library)
    assert set(cards) == {"Fooocus V2", "Text Only"}  # Random Style and "With Image" have images
    assert cards["Text Only"] == {"prompt": '<script>alert("x")</script> {prompt}', "negative": "a & b"}
    carrier = cards_html(library)
    assert "<script>" not in carrier and '"' not in carrier.split('data-cards="', 1)[1].split('"', 1)[0]
    payload = re.search(r'data-cards="([^"]*)"', carrier).group(1)
    assert json.loads(html_module.unescape(payload)) == cards


def test_picker_builds_inside_blocks() -> None:
    gr = pytest.importorskip("gradio")
    from lib_fooocus.webui.style_picker import build_style_picker

    state = {"library": make_library("Alpha", "Beta")}

    def reload_library() -> StyleLibrary:
        state["library"] = make_library("Beta", "Gamma")
        return state["library"]

    with gr.Blocks() as demo:
        picker = build_style_picker("txt2img_fooocus", lambda: state["library"], reload_library, value=["Beta", "Nope"])
    assert isinstance(picker.styles, gr.CheckboxGroup)
    assert isinstance(picker.search, gr.Textbox)
    assert isinstance(picker.refresh, gr.Button)
    assert picker.styles.elem_id == "txt2img_fooocus_styles"
    assert picker.search.elem_id == "txt2img_fooocus_styles_search"
    assert GROUP_CLASS in picker.styles.elem_classes
    assert picker.styles.value == ["Beta"]  # unknown names are not offered to gradio
    choices = [c[0] if isinstance(c, (tuple, list)) else c for c in picker.styles.choices]
    assert choices == ["Fooocus V2", "Random Style", "Alpha", "Beta"]
    config = json.dumps(demo.get_config_file())
    for suffix in ("_styles", "_styles_search", "_styles_count", "_styles_refresh", "_styles_picker"):
        assert f'"txt2img_fooocus{suffix}"' in config
    outputs_of = [set(d.get("outputs", [])) for d in demo.get_config_file()["dependencies"]]
    assert {picker.styles._id, picker.count._id, picker.notes._id, picker.cards._id} in outputs_of  # refresh
    assert {picker.count._id} in outputs_of  # count on change


def test_picker_uses_fooocus_default_without_value() -> None:
    gr = pytest.importorskip("gradio")
    from lib_fooocus.webui.style_picker import build_style_picker

    library = StyleLibrary.from_styles([
        {"name": "Fooocus Enhance", "negative_prompt": "x"}, {"name": "Fooocus Sharp", "prompt": "{prompt}"},
    ])
    with gr.Blocks():
        picker = build_style_picker("img2img_fooocus", lambda: library, lambda: library)
    assert picker.styles.value == ["Fooocus V2", "Fooocus Enhance", "Fooocus Sharp"]


# -- browser --------------------------------------------------------------------------------------

TRICKY = '<img src=x onerror="window.__xss=1">Trick'
NAMES = ["Fooocus V2", "Random Style", "Warm Portrait Film", "Noir Crime Frame", "Pixel Sprite", TRICKY, "Film Noir Alley",
         "__proto__"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="style.css">
<style>.wrap { display: flex; flex-wrap: wrap; width: 2000px; } label { display: flex; width: 200px; }</style>
<script>
""" + WEBUI_PAGE_FUNCTIONS + """</script>
<script src="fooocus_styles.js"></script>
</head><body>
<div id="t_styles_picker" class="fooocus-styles-picker">
  <div id="t_styles_search" class="block fooocus-styles-search"><label><span>Search</span><textarea></textarea></label></div>
  <button id="t_styles_refresh">Refresh</button>
  <div id="t_styles_count"></div>
  <fieldset id="t_styles" class="block fooocus-styles-group"><span>Styles</span>
    <div class="wrap" data-testid="checkbox-group"></div>
  </fieldset>
  <div id="t_styles_cards">__CARDS__</div>
</div>
<pre id="results"></pre>
<script>
(function () {
  var names = __NAMES__;
  var wrap = document.querySelector("#t_styles .wrap");
  names.forEach(function (name) {
    var label = document.createElement("label");
    var input = document.createElement("input");
    input.type = "checkbox";
    input.name = name;
    var span = document.createElement("span");
    span.className = "ml-2";
    span.textContent = name;
    label.appendChild(input);
    label.appendChild(span);
    wrap.appendChild(label);
  });
  function labelFor(name) {
    return Array.prototype.find.call(wrap.querySelectorAll("label"), function (l) {
      return l.querySelector("span").textContent === name;
    });
  }
  function visibleNames() {
    return Array.prototype.filter.call(wrap.querySelectorAll("label"), function (l) {
      return getComputedStyle(l).display !== "none";
    }).sort(function (a, b) {
      return (a.offsetTop - b.offsetTop) || (a.offsetLeft - b.offsetLeft);
    }).map(function (l) { return l.querySelector("span").textContent; });
  }
  function type(text) {
    var box = document.querySelector("#t_styles_search textarea");
    box.value = text;
    box.dispatchEvent(new Event("input", {bubbles: true}));
  }
  function click(name) {
    var input = labelFor(name).querySelector("input");
    input.checked = !input.checked;
    input.dispatchEvent(new Event("change", {bubbles: true}));
  }
  var results = {};
  function later(fn) { return new Promise(function (resolve) { setTimeout(function () { fn(); resolve(); }, 150); }); }
  window.__loaded.forEach(function (callback) { callback(); });
  Promise.resolve()
    .then(function () { return later(function () { results.initial = visibleNames(); }); })
    .then(function () { type("NOIR"); return later(function () { results.noir = visibleNames(); }); })
    .then(function () { type("noir alley"); return later(function () { results.two_words = visibleNames(); }); })
    .then(function () { type(""); click("Pixel Sprite"); click("Warm Portrait Film");
      return later(function () { results.selected_first = visibleNames(); }); })
    .then(function () { type("noir"); return later(function () { results.selected_stay = visibleNames(); }); })
    .then(function () { click("Pixel Sprite"); type("");
      // a selection made by gradio itself (paste): the checkbox changes without a click event
      labelFor("Film Noir Alley").querySelector("input").checked = true;
      labelFor("Film Noir Alley").classList.add("selected");
      return later(function () { results.after_external = visibleNames(); }); })
    .then(function () {
      // the server's count after a paste: the value's real order, which the checkboxes cannot show
      document.getElementById("t_styles_count").innerHTML = __COUNT__;
      return later(function () { results.server_order = visibleNames(); }); })
    .then(function () {
      var label = labelFor(__TRICKY__);
      label.dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: 10, clientY: 10}));
      return new Promise(function (resolve) { setTimeout(resolve, 600); });
    })
    .then(function () {
      var box = document.getElementById("fooocus-style-preview");
      results.preview_visible = !!box && box.classList.contains("fooocus-style-preview-visible");
      results.preview_src = box ? box.querySelector("img").src : null;
      results.preview_caption = box ? box.querySelector(".fooocus-style-preview-caption").textContent : null;
      labelFor("Pixel Sprite").dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: 5, clientY: 5}));
      var card = box.querySelector(".fooocus-style-card");
      results.card_shown = box.classList.contains("fooocus-style-preview-visible") &&
        box.classList.contains("fooocus-style-preview-card") && getComputedStyle(card).display !== "none" &&
        getComputedStyle(box.querySelector("img")).display === "none";
      results.card_texts = Array.prototype.map.call(card.children, function (c) { return c.textContent; });
      results.card_marks = Array.prototype.map.call(card.querySelectorAll("mark"), function (m) { return m.textContent; });
      results.card_elements = card.querySelectorAll("*").length;
      labelFor("Random Style").dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: 5, clientY: 5}));
      results.special_card = Array.prototype.map.call(card.children, function (c) { return c.textContent; });
      labelFor("Noir Crime Frame").dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: 5, clientY: 5}));
      results.no_preview_hidden = !box.classList.contains("fooocus-style-preview-visible");
      // a name that is also a property of every JS object has no card either
      labelFor("__proto__").dispatchEvent(new MouseEvent("mouseover", {bubbles: true, clientX: 5, clientY: 5}));
      results.proto_hidden = !box.classList.contains("fooocus-style-preview-visible");
      results.xss = window.__xss === 1 || document.querySelectorAll('img[src="x"]').length > 0;
      document.getElementById("results").textContent = "RESULTS:" + JSON.stringify(results);
    });
})();
</script>
</body></html>
"""


# "Pixel Sprite" and Random Style have no preview image: text cards. TRICKY has an image (the REST
# listing says so), which wins over its card. "Noir Crime Frame" has neither.
CARD_PROMPT = '<img src=x onerror="window.__xss=1"> pixel art of {prompt}, 8-bit {prompt}'
CARD_LIBRARY = StyleLibrary.from_styles([
    {"name": "Pixel Sprite", "prompt": CARD_PROMPT, "negative_prompt": "<b>blurry</b> & smooth"},
    {"name": TRICKY, "prompt": "{prompt}, trick"},
])


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    page = PAGE.replace("__NAMES__", json.dumps(NAMES)).replace("__TRICKY__", json.dumps(TRICKY))
    page = page.replace("__COUNT__", json.dumps(count_html(["Film Noir Alley", TRICKY, "Warm Portrait Film"])))
    page = page.replace("__CARDS__", cards_html(CARD_LIBRARY))
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    shutil.copy(REPO_ROOT / "javascript" / "fooocus_styles.js", tmp_path)
    shutil.copy(REPO_ROOT / "style.css", tmp_path)
    # The page's preview list (the UI route, behind the UI login): a local URL and a foreign one,
    # which the script must not load. The API listing is served too, so a page reading it would pass
    # the same checks only with the wrong source: its URL is not the UI route's.
    ui = tmp_path / "fooocus" / "ui" / "v1" / "styles"
    ui.mkdir(parents=True)
    (ui / "previews").write_text(json.dumps({"previews": {
        TRICKY: "/fooocus/ui/v1/styles/preview/trick.jpg", "Fooocus V2": "https://elsewhere.example/evil.jpg",
    }}), encoding="utf-8")
    api = tmp_path / "fooocus" / "v1"
    api.mkdir(parents=True)
    (api / "styles").write_text(json.dumps({
        "styles": [{"name": TRICKY, "preview_url": "/fooocus/v1/styles/preview/trick.jpg"}], "special": [],
    }), encoding="utf-8")
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    with serving(handler) as url:
        yield f"{url}/"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@needs_chromium
def test_filter_order_and_preview_in_headless_chromium(page_server: str, tmp_path: Path) -> None:
    results = page_results(page_server + "index.html", tmp_path / "profile", budget_ms=10000)
    assert results["initial"] == NAMES
    assert results["noir"] == ["Noir Crime Frame", "Film Noir Alley"]
    assert results["two_words"] == ["Film Noir Alley"]
    others = [n for n in NAMES if n not in ("Pixel Sprite", "Warm Portrait Film")]
    assert results["selected_first"] == ["Pixel Sprite", "Warm Portrait Film", *others]
    assert results["selected_stay"] == ["Pixel Sprite", "Warm Portrait Film", "Noir Crime Frame", "Film Noir Alley"]
    rest = [n for n in NAMES if n not in ("Warm Portrait Film", "Film Noir Alley")]
    assert results["after_external"] == ["Warm Portrait Film", "Film Noir Alley", *rest]
    # a name the server lists but that is not checked (yet) is left out; the checked ones follow its order
    assert results["server_order"] == ["Film Noir Alley", "Warm Portrait Film", *rest]
    assert results["preview_visible"] is True
    assert results["preview_src"] == page_server + "fooocus/ui/v1/styles/preview/trick.jpg"
    assert results["preview_caption"] == TRICKY
    assert results["card_shown"] is True
    assert results["card_texts"] == ["Pixel Sprite", "Positive", CARD_PROMPT, "Negative", "<b>blurry</b> & smooth"]
    assert results["card_marks"] == ["{prompt}", "{prompt}"]
    assert results["card_elements"] == 7  # title, 2 labels, 2 texts, 2 marks: nothing parsed from the texts
    assert results["special_card"][0] == "Random Style" and "image seed" in results["special_card"][1]
    assert results["no_preview_hidden"] is True
    assert results["proto_hidden"] is True
    assert results["xss"] is False


OTHER_PICKERS_PAGE = """<!doctype html><meta charset="utf-8">
<script>window.gradioApp = function () { return document; };</script>
<script src="fooocus_styles.js"></script>
<div id="t_styles_picker" class="fooocus-styles-picker"><button id="t_styles_refresh">Refresh</button></div>
<div id="u_styles_picker" class="fooocus-styles-picker"><button id="u_styles_refresh">Refresh</button></div>
<button id="x_styles_refresh">not in a picker</button>
<pre id="results"></pre>
<script>
  var clicks = {};
  document.querySelectorAll("button").forEach(function (b) {
    clicks[b.id] = 0;
    b.addEventListener("click", function () { clicks[b.id] += 1; });
  });
  var returned = (__CODE__)();
  document.getElementById("results").textContent = "RESULTS:" + JSON.stringify({returned: returned, clicks: clicks});
</script>
"""


@needs_chromium
def test_an_import_refreshes_the_other_tabs_pickers_in_headless_chromium(tmp_path: Path) -> None:
    """The code run after an import (ui_tools.refresh_others_js) clicks the other pickers' Refresh
    buttons, not the importing tab's own (its picker came with the import's answer) nor others."""
    from lib_fooocus.webui.ui_tools import refresh_others_js

    page = OTHER_PICKERS_PAGE.replace("__CODE__", refresh_others_js("t_styles_refresh"))
    (tmp_path / "index.html").write_text(page, encoding="utf-8")
    shutil.copy(REPO_ROOT / "javascript" / "fooocus_styles.js", tmp_path)
    results = page_results((tmp_path / "index.html").as_uri(), tmp_path / "profile", budget_ms=2000)
    assert results["clicks"] == {"t_styles_refresh": 0, "u_styles_refresh": 1, "x_styles_refresh": 0}
    assert results["returned"] == []  # no outputs: gradio gets an empty list
