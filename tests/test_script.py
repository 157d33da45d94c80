"""The Script with fake host modules: one FooocusParams per generation from UI, API list and API
object args; X/Y/Z overrides; prompt rewriting per image seed (hires prompts too); infotext and its
round trip; settings; callbacks; a disabled generation touching nothing."""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import types
from pathlib import Path

import pytest
import webui_fakes

from lib_fooocus.params import FIELDS, FooocusParams
from lib_fooocus.styles.assembly import INFOTEXT_PROMPT_KEY
from lib_fooocus.styles.library import StyleLibrary
from lib_fooocus.webui import context as context_module
from lib_fooocus.webui import generation, paste, settings, xyz
from lib_fooocus.webui.api_validation import infotext_pairs
from lib_fooocus.webui.context import FooocusContext, expansion_settings_from_options
from lib_fooocus.webui.runtime import PARAMS_ATTRIBUTE, Runtime
from lib_fooocus.webui.script_args import XYZ_ATTRIBUTE

REPO = Path(__file__).resolve().parents[1]
LIBRARY = StyleLibrary.from_styles([
    {"name": "Warm Light", "prompt": "{prompt}, warm light", "negative_prompt": "cold"},
    {"name": "Two Lines", "prompt": "{prompt}, first\nsecond part", "negative_prompt": ""},
    {"name": "Clean Quality Negative", "prompt": "", "negative_prompt": "blurry"},
])
UI_DEFAULT_ARGS = (False, 2.0, 7.0, 1.5, 0.8, 0.3, True, False, ["Clean Quality Negative"])


class FakeAdapter:
    name = "fake"

    def __init__(self):
        self.calls: list[tuple[str, object]] = []
        self.filter_methods: list[str] = []

    def begin_generation(self, p, params, *, filter_method="auto"):
        self.calls.append(("begin", params))
        self.filter_methods.append(filter_method)

    def before_sampling(self, p, params):
        self.calls.append(("before", params))

    def end_generation(self, p):
        self.calls.append(("end", None))

    def begin_match(self, p, prompts, raw_texts):
        self.calls.append(("match", (prompts, raw_texts)))
        return True


class FakeExpander:
    def __init__(self, fail: Exception | None = None):
        self.calls: list[tuple[str, int]] = []
        self.fail = fail

    def expand(self, prompt: str, seed: int) -> str:
        self.calls.append((prompt, seed))
        if self.fail:
            raise self.fail
        return f"exp{seed} words"

    def finish_generation(self) -> None:
        pass


def load_script_module():
    spec = importlib.util.spec_from_file_location("fooocus_script_under_test", REPO / "scripts" / "fooocus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def host(monkeypatch, request):
    name = getattr(request, "param", "a1111-1.6")
    return webui_fakes.install(name, monkeypatch.setitem)


@pytest.fixture
def script(host, monkeypatch):
    adapter, expander = FakeAdapter(), FakeExpander()
    context = FooocusContext(
        load_style_library=lambda: LIBRARY, make_expansion_service=lambda _settings: expander, make_adapter=lambda: adapter
    )
    # The Script file creates the process-wide context when it is loaded: hand it the test's one.
    monkeypatch.setattr(context_module, "FooocusContext", lambda: context)
    module = load_script_module()
    instance = module.FooocusScript()
    instance.adapter, instance.expander = adapter, expander
    return instance


def make_p(host, **kwargs):
    return host.processing.StableDiffusionProcessing(**kwargs)


def snapshot(p):
    return copy.deepcopy(dict(vars(p)))


# -- disabled -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [UI_DEFAULT_ARGS, (), ({"sharpness": 3.0},), ({"enabled": False, "styles": ["Warm Light"]},)])
def test_disabled_touches_nothing(host, script, args) -> None:
    p = make_p(host, prompt="a cat, <lora:x:1>", negative_prompt="ugly", batch_size=2, enable_hr=True)
    before = snapshot(p)
    script.process(p, *args)
    script.process_batch(p, *args, batch_number=0, prompts=[], seeds=[], subseeds=[])
    script.process_before_every_sampling(p, *args, x=None, noise=None, c=None, uc=None)
    script.before_hr(p, *args)
    script.postprocess_image(p, types.SimpleNamespace(image=None), *args)
    script.postprocess(p, None, *args)
    assert snapshot(p) == before
    assert script.adapter.calls == []
    assert script.expander.calls == []


# -- API and UI argument forms ----------------------------------------------------------------------------


def test_ui_positional_args(host, script) -> None:
    p = make_p(host)
    script.process(p, True, 3.5, 6.0, 1.2, 0.7, 0.25, False, False, [])
    assert script.adapter.calls == [("begin", FooocusParams(True, 3.5, 6.0, 1.2, 0.7, 0.25, False, False, ()))]
    assert p.extra_generation_params == {
        "Fooocus": "True", "Fooocus sharpness": "3.5", "Fooocus adaptive CFG": "6", "Fooocus ADM positive": "1.2",
        "Fooocus ADM negative": "0.7", "Fooocus ADM end": "0.25", "Fooocus hires": "False",
    }
    assert p.all_prompts == ["a cat"]  # no style, no expansion: the prompt is left exactly as typed


def test_api_object_form_fills_omitted_fields_from_settings(host, script) -> None:
    host.shared.opts.add_option(settings.default_key("adaptive_cfg"), host.shared.OptionInfo(5.0))
    p = make_p(host)
    script.process(p, {"enabled": True, "sharpness": 3}, *UI_DEFAULT_ARGS[1:])
    (kind, params), = script.adapter.calls
    assert kind == "begin"
    assert params.sharpness == 3.0 and params.adaptive_cfg == 5.0 and params.adm_scaler_positive == 1.5
    assert params.styles == ("Clean Quality Negative",)  # the library's default selection
    assert p.all_negative_prompts == ["blurry"]


def test_api_list_form_partial(host, script) -> None:
    p = make_p(host)
    # the host fills the positions a request leaves out with the ui() defaults
    script.process(p, True, 4.0, *UI_DEFAULT_ARGS[2:8], [])
    assert script.adapter.calls[0][1].sharpness == 4.0


def test_invalid_args_that_slip_through_are_logged_and_ignored(host, script, caplog) -> None:
    p = make_p(host)
    before = snapshot(p)
    with caplog.at_level(logging.ERROR):
        script.process(p, {"enabled": True, "sharpness": 99})
    assert "sharpness: expected a number from 0 to 30" in caplog.text
    assert snapshot(p) == before and script.adapter.calls == []


def test_hooks_forward_to_the_adapter_when_enabled(host, script) -> None:
    p = make_p(host)
    args = (True, *UI_DEFAULT_ARGS[1:8], [])
    script.process(p, *args)
    script.process_batch(p, *args, batch_number=0, prompts=[], seeds=[], subseeds=[])
    script.process_before_every_sampling(p, *args, x=None, noise=None, c=None, uc=None)
    script.before_hr(p, *args)
    script.postprocess(p, None, *args)
    assert [kind for kind, _ in script.adapter.calls] == ["begin", "before", "before", "before", "end"]
    p2 = make_p(host)
    script.process(p2, *UI_DEFAULT_ARGS)  # a later disabled job on the same script leaves p2 alone
    assert not hasattr(p2, PARAMS_ATTRIBUTE)


# -- prompts: styles + expansion per image seed ----------------------------------------------------------


def test_styles_and_expansion_per_image_seed_and_hires(host, script) -> None:
    p = make_p(host, prompt="a cat <lora:x:1>\nextra line", negative_prompt="ugly", batch_size=2, n_iter=2,
               seed=10, enable_hr=True)
    p.all_hr_prompts[3] = "a dog"  # a separate hires prompt for the last image
    script.process(p, {"enabled": True, "styles": ["Warm Light", "Two Lines"], "expansion": True})
    expected = [
        f"a cat, warm light BREAK a cat, first BREAK second part BREAK extra line BREAK exp{seed} words <lora:x:1>"
        for seed in (10, 11, 12, 13)
    ]
    assert p.all_prompts == expected
    assert p.all_negative_prompts == ["cold BREAK ugly"] * 4
    assert (p.main_prompt, p.main_negative_prompt) == (expected[0], "cold BREAK ugly")
    assert p.all_hr_prompts[:3] == expected[:3]
    assert p.all_hr_prompts[3] == "a dog, warm light BREAK a dog, first BREAK second part BREAK exp13 words"
    assert p.all_hr_negative_prompts == ["cold BREAK ugly"] * 4
    # the expansion continues the first line without the extra-network tag
    assert ("a cat", 10) in script.expander.calls and ("a dog", 13) in script.expander.calls
    assert len(script.expander.calls) == 5  # one per (prompt, seed)


def test_match_fooocus_hands_the_adapter_each_prompts_parts(host, script) -> None:
    from lib_fooocus.match.syntax import PromptParts

    p = make_p(host, prompt="a cat <lora:x:1>\nextra line", negative_prompt="", batch_size=1, n_iter=2, seed=10,
               enable_hr=True)
    p.all_hr_prompts[1] = "a dog"
    script.process(p, {"enabled": True, "styles": ["Warm Light"], "expansion": True, "match_fooocus": True})
    [(prompts, raw_texts)] = [value for kind, value in script.adapter.calls if kind == "match"]
    assert prompts.find(p.all_prompts[0], negative=False) == PromptParts(
        ("a cat, warm light", "extra line", "exp10 words"), 2)
    assert prompts.find(p.all_hr_prompts[1], negative=False) == PromptParts(("a dog, warm light", "exp11 words"), 1)
    assert prompts.find(p.all_negative_prompts[0], negative=True) == PromptParts(("cold",), 1)
    assert raw_texts[0] == "a cat <lora:x:1>\nextra line"  # the user's prompt decides the fallback, not BREAK
    # match off: never asked
    script.adapter.calls.clear()
    script.process(make_p(host, prompt="a cat", seed=1), {"enabled": True, "styles": ["Warm Light"]})
    assert [kind for kind, _ in script.adapter.calls] == ["begin"]


def test_and_prompt_styles_each_subprompt_per_image_seed(host, script) -> None:
    p = make_p(host, prompt="a cat:1.3 AND a dog:0.7", batch_size=2, seed=3)
    script.process(p, {"enabled": True, "styles": ["Warm Light"], "expansion": True})
    assert p.all_prompts == [f"a cat, warm light BREAK exp{seed} words:1.3 AND a dog, warm light:0.7" for seed in (3, 4)]
    assert p.all_negative_prompts == ["cold"] * 2
    assert script.expander.calls == [("a cat", 3), ("a cat", 4)]
    assert p.extra_generation_params[INFOTEXT_PROMPT_KEY] == "a cat:1.3 AND a dog:0.7"

def test_fooocus_v2_style_entry_turns_the_expansion_on(host, script) -> None:
    p = make_p(host, prompt="a cat")
    script.process(p, {"enabled": True, "styles": ["Fooocus V2"]})
    assert p.all_prompts == ["a cat BREAK exp1000 words"]


def test_missing_expansion_model_keeps_styles_and_generates(host, script, caplog) -> None:
    script.runtime.get_expander = lambda: FakeExpander(RuntimeError("Fooocus V2 expansion is unavailable: missing x"))
    p = make_p(host, prompt="a cat", batch_size=2)
    with caplog.at_level(logging.ERROR):
        script.process(p, {"enabled": True, "styles": ["Warm Light"], "expansion": True})
    assert p.all_prompts == ["a cat, warm light"] * 2
    assert caplog.text.count("missing x") == 1
    assert script.adapter.calls[0][0] == "begin"


def test_unknown_style_is_skipped_with_a_warning(host, script, caplog) -> None:
    p = make_p(host, prompt="a cat")
    with caplog.at_level(logging.WARNING):
        script.process(p, True, *UI_DEFAULT_ARGS[1:8], ["Gone Style", "Warm Light"])
    assert p.all_prompts == ["a cat, warm light"]
    assert "Gone Style" in caplog.text


# -- infotext -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["a1111-1.6", "a1111-1.10"], indirect=True)
def test_infotext_per_image_on_every_host(host, script) -> None:
    p = make_p(host, prompt="a cat", batch_size=2, seed=5)
    script.process(p, {"enabled": True, "expansion": True, "styles": []})
    texts = []
    for index in range(2):
        p.iteration, p.batch_index = 0, index
        script.postprocess_image(p, types.SimpleNamespace(image=None))
        texts.append(host.processing.create_infotext(p, p.all_prompts, p.all_seeds, [], iteration=0,
                                                     position_in_batch=index))
    assert "Fooocus V2 expansion: exp5 words" in texts[0] and "exp6" not in texts[0]
    assert "Fooocus V2 expansion: exp6 words" in texts[1]
    assert all("Fooocus prompt: a cat" in text and "Fooocus V2: True" in text for text in texts)
    if host.host == "a1111-1.10":
        assert p.extra_generation_params["Fooocus V2 expansion"] == ["exp5 words", "exp6 words"]


def host_quote(value) -> str:
    text = str(value)
    return json.dumps(text) if any(c in text for c in ",:\n") else text


def test_infotext_round_trip_restores_params_and_original_prompt(host, script) -> None:
    p = make_p(host, prompt="a cat, sitting", negative_prompt="ugly")
    sent = {"enabled": True, "sharpness": 12.5, "adm_scaler_end": 0.6, "apply_in_hires": False,
            "expansion": True, "styles": ["Warm Light", "Clean Quality Negative"]}
    script.process(p, sent)
    # what the host writes: `Key: value`, JSON-quoted when the value holds ',', ':' or a newline
    line = ", ".join(f"{key}: {host_quote(value)}" for key, value in {"Steps": 4, **p.extra_generation_params}.items())
    text = f"{p.all_prompts[0]}\nNegative prompt: {p.all_negative_prompts[0]}\n{line}"
    fields = infotext_pairs(text)
    fields["Prompt"] = p.all_prompts[0]
    paste.restore_prompts_on_paste(text, fields)
    assert fields["Prompt"] == "a cat, sitting"
    assert fields["Negative prompt"] == "ugly"
    pasted = {spec.name: paste.paste_function(spec.name, LIBRARY.resolve)(fields) for spec in FIELDS}
    expected = FooocusParams.from_dict({**FooocusParams().to_dict(), **sent})
    assert FooocusParams.from_dict(pasted) == expected


def host_parse(text: str) -> dict[str, str]:
    """The hosts' `parse_generation_parameters` for the parameter line: a value is unquoted when it
    starts and ends with '"'; an empty value fails `v[0]` there and the key is dropped."""
    import re

    pairs = {}
    for key, value in re.findall(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)', text.split("\n")[-1]):
        if not value:
            continue
        pairs[key] = json.loads(value) if value[0] == '"' and value[-1] == '"' else value
    return pairs


def test_empty_original_negative_prompt_survives_the_host_parser(host, script) -> None:
    # Seen on real Forge main: "Fooocus negative prompt: ," was dropped by the host's parser, so
    # "Send to txt2img" kept the styled negative and the styles' negatives were applied twice.
    p = make_p(host, prompt="a cat", negative_prompt="")
    script.process(p, {"enabled": True, "styles": ["Clean Quality Negative"]})
    assert p.all_negative_prompts == ["blurry"]
    line = ", ".join(f"{key}: {host_quote(value)}" for key, value in {"Steps": 4, **p.extra_generation_params}.items())
    text = f"{p.all_prompts[0]}\nNegative prompt: {p.all_negative_prompts[0]}\n{line}"
    fields = host_parse(text)
    assert fields["Fooocus negative prompt"] == ""
    fields.update({"Prompt": p.all_prompts[0], "Negative prompt": p.all_negative_prompts[0]})
    paste.restore_prompts_on_paste(text, fields)
    assert fields["Negative prompt"] == ""
    assert fields["Prompt"] == "a cat"


def test_paste_clamps_with_a_warning_and_non_fooocus_infotext_switches_off(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        value = paste.paste_function("sharpness")({"Fooocus": "True", "Fooocus sharpness": "55"})
    assert value == 30.0 and "outside 0..30" in caplog.text
    plain = {"Prompt": "x", "Steps": "20"}
    assert paste.paste_function("enabled")(plain) is False
    assert paste.paste_function("sharpness")(plain) is None  # None = leave the control alone
    styles = paste.paste_function("styles", LIBRARY.resolve)({"Fooocus": "True", "Fooocus styles": '["warm-light", "Nope"]'})
    assert styles == ["Warm Light"]


def test_paste_after_a_style_library_refresh_selects_the_new_style() -> None:
    """The paste cache is keyed by the pasted fields only: a refresh must empty it, or the second
    paste of the same infotext returns the first one's selection without the newly added style."""
    added = StyleLibrary.from_styles([*LIBRARY.styles.values(), {"name": "New Style", "prompt": "{prompt}, new"}])
    libraries = [LIBRARY, added]
    context = FooocusContext(load_style_library=lambda: libraries[0])
    paste_styles = paste.paste_function("styles", context.resolve_style, context.paste_cache)
    fields = {"Fooocus": "True", "Fooocus styles": '["New Style", "Warm Light"]'}
    assert paste_styles(fields) == ["Warm Light"]  # not in the library yet
    assert paste_styles(fields) == ["Warm Light"]  # the same paste, from the cache
    libraries.pop(0)
    context.reload_style_library()  # the picker's Refresh
    assert paste_styles(fields) == ["New Style", "Warm Light"]


def test_api_infotext_field_gets_the_original_prompt() -> None:
    function = paste.original_prompt_function(INFOTEXT_PROMPT_KEY)
    assert function({INFOTEXT_PROMPT_KEY: "a cat"}) == "a cat"
    assert function({"Prompt": "styled"}) is None


# -- X/Y/Z ----------------------------------------------------------------------------------------------


def fake_xyz_module():
    class AxisOption:
        def __init__(self, label, type, apply, format_value=None, confirm=None, cost=0.0, choices=None):
            self.label, self.type, self.apply, self.choices = label, type, apply, choices
            self.format_value, self.confirm = format_value, confirm

    module = types.ModuleType("xyz_grid.py")
    module.AxisOption = AxisOption
    module.axis_options = [AxisOption("Nothing", str, lambda p, x, xs: None)]
    return module


def xyz_cell(p):
    """What the X/Y/Z script does per cell: a shallow copy with its own infotext dict."""
    cell = copy.copy(p)
    cell.extra_generation_params = copy.copy(p.extra_generation_params)
    return cell


def test_xyz_axes_are_registered_once_and_clamped(host, script, caplog) -> None:
    module = fake_xyz_module()
    script_class = type("Script", (), {"__module__": "xyz_grid.py"})
    host.scripts.scripts_data.append(host.scripts.ScriptClassData(script_class, "/webui/scripts/xyz_grid.py", "/webui", module))
    for callback in host.script_callbacks.callbacks["before_ui"]:
        callback()
        callback()
    labels = [option.label for option in module.axis_options]
    numeric = [f"[Fooocus] {spec.label}" for spec in FIELDS if spec.kind is float]
    assert labels == ["Nothing", "[Fooocus] Enabled", *numeric[:5], "[Fooocus] Apply in hires pass",
                      "[Fooocus] Fooocus V2 expansion", "[Fooocus] Refiner", "[Fooocus] Refiner switch at",
                      "[Fooocus] Match Fooocus", "[Fooocus] Styles"]
    by_label = {option.label: option for option in module.axis_options}
    assert by_label["[Fooocus] Sharpness"].type is float
    assert by_label["[Fooocus] Enabled"].choices() == ["True", "False"]
    assert by_label["[Fooocus] Styles"].choices() == LIBRARY.selectable_names
    assert by_label["[Fooocus] Refiner"].choices()[0] == "None"  # then the host's checkpoints
    assert by_label["[Fooocus] Refiner switch at"].type is float

    base = make_p(host, prompt="a cat")
    cell = xyz_cell(base)
    by_label["[Fooocus] Sharpness"].apply(cell, 45.0, [45.0])
    by_label["[Fooocus] Styles"].apply(cell, "Warm Light", [])
    by_label["[Fooocus] Refiner"].apply(cell, "second.safetensors [abcd]", [])
    by_label["[Fooocus] Refiner switch at"].apply(cell, 0.05, [])
    assert not hasattr(base, XYZ_ATTRIBUTE)
    with caplog.at_level(logging.WARNING):
        script.process(cell, *UI_DEFAULT_ARGS)  # accordion off: plotting a Fooocus axis switches it on
    params = script.adapter.calls[-1][1]
    assert params.enabled and params.sharpness == 30.0 and params.styles == ("Warm Light",)
    assert params.refiner_checkpoint == "second.safetensors [abcd]" and params.refiner_switch == 0.1
    assert "sharpness=45 is outside 0..30" in caplog.text
    assert cell.all_prompts == ["a cat, warm light"]

    off = xyz_cell(base)
    by_label["[Fooocus] Enabled"].apply(off, "False", [])
    by_label["[Fooocus] Sharpness"].apply(off, 3.0, [])
    calls = len(script.adapter.calls)
    script.process(off, True, *UI_DEFAULT_ARGS[1:])
    assert len(script.adapter.calls) == calls and off.extra_generation_params == {}


def test_no_xyz_script_no_axes(host) -> None:
    assert xyz.register_axes([], None) == 0


# -- settings, callbacks, REST ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["a1111-1.10"], indirect=True)
def test_settings_section_registers_every_default(host, script) -> None:
    for callback in host.script_callbacks.callbacks["ui_settings"]:
        callback()
    labels = host.shared.opts.data_labels
    for spec in FIELDS:
        if spec.name in ("enabled", "styles", "refiner_checkpoint"):  # no default setting: off unless asked
            continue
        option = labels[settings.default_key(spec.name)]
        assert option.section == settings.SECTION and option.default == spec.default
        if spec.kind is float:
            assert option.component_args == {"minimum": spec.minimum, "maximum": spec.maximum, "step": spec.step}
    for key in (settings.KEY_ACCORDION_OPEN, settings.KEY_EXPANSION_DIR, settings.KEY_EXPANSION_REPO,
                settings.KEY_EXPANSION_REVISION, settings.KEY_EXPANSION_DEVICE, settings.KEY_EXPANSION_UNLOAD,
                settings.KEY_STYLES_FOOOCUS_DIR, settings.KEY_STYLES_EXTRA, settings.KEY_DEFAULT_STYLES,
                settings.KEY_REFINER_PLACEMENT, settings.KEY_REFINER_KEEP_CACHED):
        assert key in labels
    assert labels[settings.KEY_EXPANSION_DEVICE].component_args == {"choices": list(settings.DEVICE_CHOICES)}
    assert labels[settings.KEY_REFINER_PLACEMENT].component_args == {"choices": ["CPU RAM", "Compute device"]}
    from lib_fooocus.hosts import refiner_swap  # reads these keys from the host's opts

    assert (refiner_swap.SETTING_PLACEMENT, refiner_swap.SETTING_KEEP_CACHED) == (
        settings.KEY_REFINER_PLACEMENT, settings.KEY_REFINER_KEEP_CACHED)
    assert set(refiner_swap.PLACEMENT_LABELS) == set(settings.REFINER_PLACEMENTS)
    host.shared.opts.fooocus_default_sharpness = 99  # out of range: clamped with a warning
    host.shared.opts.fooocus_default_styles = "none"
    defaults = settings.default_params(LIBRARY)
    assert defaults.sharpness == 30.0 and defaults.styles == () and defaults.enabled is False
    assert str(settings.expansion_model_dir()).endswith("prompt_expansion/fooocus_expansion")
    host.shared.opts.fooocus_expansion_model_dir = "/somewhere/else"
    assert str(settings.expansion_model_dir()) == "/somewhere/else"


DOWNLOAD_AND_FOLDER_KEYS = (
    settings.KEY_EXPANSION_DIR, settings.KEY_EXPANSION_REPO, settings.KEY_EXPANSION_REVISION,
    settings.KEY_EXPANSION_DOWNLOAD, settings.KEY_STYLES_FOOOCUS_DIR, settings.KEY_STYLES_EXTRA,
)


@pytest.mark.parametrize("host", ["a1111-1.6", "forge-main"], indirect=True)
def test_download_and_folder_settings_cannot_be_changed_through_the_api(host, script) -> None:
    for callback in host.script_callbacks.callbacks["ui_settings"]:
        callback()
    opts, labels = host.shared.opts, host.shared.opts.data_labels
    for key in DOWNLOAD_AND_FOLDER_KEYS:
        assert labels[key].restrict_api is True, key
        # override_settings / POST /sdapi/v1/options: is_api=True, refused by the host
        assert opts.set(key, "/elsewhere", is_api=True) is False
        assert settings.read(key) == settings.OPTION_DEFAULTS[key]
        assert opts.set(key, "/from/the/ui") is True  # the Settings tab still can
    api_settable = [key for key, option in labels.items() if not option.restrict_api]
    assert settings.KEY_EXPANSION_DEVICE in api_settable and settings.default_key("sharpness") in api_settable


@pytest.mark.parametrize("host", ["a1111-1.10"], indirect=True)
def test_sharpness_filter_setting_reaches_the_adapter_and_is_ui_only(host, script, caplog) -> None:
    for callback in host.script_callbacks.callbacks["ui_settings"]:
        callback()
    opts, labels = host.shared.opts, host.shared.opts.data_labels
    assert labels[settings.KEY_FILTER_METHOD].restrict_api is True
    assert labels[settings.KEY_FILTER_METHOD].component_args == {"choices": ["auto", "shift", "batched"]}
    assert opts.set(settings.KEY_FILTER_METHOD, "shift", is_api=True) is False
    script.process(make_p(host), True)
    for value in ("batched", "shift"):
        assert opts.set(settings.KEY_FILTER_METHOD, value) is True
        script.process(make_p(host), True)
    opts.fooocus_sharpness_filter = "turbo"  # a hand-edited config.json
    with caplog.at_level(logging.WARNING):
        script.process(make_p(host), True)
    assert script.adapter.filter_methods == ["auto", "batched", "shift", "auto"]
    assert "fooocus_sharpness_filter='turbo'" in caplog.text


def test_hosts_without_restrict_api_still_get_the_settings(monkeypatch, caplog) -> None:
    fakes = webui_fakes.install("a1111-1.6", monkeypatch.setitem)

    class OldOptionInfo:  # before A1111 1.6: no restrict_api keyword
        def __init__(self, default=None, label="", component=None, component_args=None, onchange=None,
                     section=None, refresh=None, comment_before="", comment_after="", infotext=None):
            self.default, self.section, self.comment_after = default, section, comment_after

    monkeypatch.setattr(fakes.shared, "OptionInfo", OldOptionInfo)
    with caplog.at_level(logging.WARNING):
        settings.register_settings()
    assert settings.KEY_EXPANSION_DIR in fakes.shared.opts.data_labels
    assert "cannot protect settings from API clients" in caplog.text


def test_settings_read_falls_back_without_a_host() -> None:
    assert settings.read(settings.KEY_EXPANSION_REPO) == "lllyasviel/misc"
    assert settings.default_params().sharpness == 2.0


def test_expansion_settings_follow_the_options(host) -> None:
    host.shared.opts.add_option(settings.KEY_EXPANSION_DEVICE, host.shared.OptionInfo(settings.DEVICE_CPU))
    host.shared.opts.add_option(settings.KEY_EXPANSION_REVISION, host.shared.OptionInfo("abc123"))
    config = expansion_settings_from_options()
    context = FooocusContext()
    assert config.use_cpu is True and config.device is None
    assert config.source.weights_revision == "abc123" and config.source.weights_repo == "lllyasviel/misc"
    first = context.expansion_service()
    assert context.expansion_service() is first
    host.shared.opts.fooocus_expansion_hub_revision = "def456"
    assert context.expansion_service() is not first


def test_app_started_adds_routes_and_validator_once(host, script) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.add_api_route("/sdapi/v1/txt2img", lambda: {"generated": True}, methods=["POST"])  # the host's route
    for _ in range(2):
        for callback in host.script_callbacks.callbacks["app_started"]:
            callback(None, app)
    paths = [route.path for route in app.routes]
    assert paths.count("/fooocus/v1/expand") == 1 and paths.count("/fooocus/v1/styles") == 1
    with TestClient(app) as client:
        names = [style["name"] for style in client.get("/fooocus/v1/styles").json()["styles"]]
        assert names == LIBRARY.names
        refused = client.post("/sdapi/v1/txt2img", json={"alwayson_scripts": {"Fooocus": {"args": [{"styles": ["Nope"]}]}}})
        assert refused.status_code == 422 and "Nope" in refused.json()["message"]


def test_generation_helpers_per_image_detection(host) -> None:
    assert generation.host_supports_per_image_infotext() is False
    assert generation.infotext_entries(FooocusParams(), None) == {}


def test_postprocess_unloads_the_expansion_when_set(host, script, monkeypatch) -> None:
    host.shared.opts.add_option(settings.KEY_EXPANSION_UNLOAD, host.shared.OptionInfo(True))
    script.context = FooocusContext(load_style_library=lambda: LIBRARY, make_adapter=lambda: script.adapter)
    script.runtime = Runtime(script.context)
    service = script.context.expansion_service()  # the real service, never loaded here
    unloaded = []
    monkeypatch.setattr(service, "unload", lambda: unloaded.append(True))
    p = make_p(host)
    script.process(p, {"enabled": True})
    assert unloaded == [True]  # done once the prompts are made: also when the sampling then fails
    script.postprocess(p, None)
    assert unloaded == [True]
    assert script.adapter.calls[-1] == ("end", None)
    script.postprocess(make_p(host), None)  # a disabled generation does not unload anything
    script.process(make_p(host), {"enabled": False, "expansion": True})
    assert unloaded == [True]


def test_interrupt_stops_the_expansions_between_images(host, script) -> None:
    """A large batch: after the user presses Interrupt, no more images are expanded (each would be a
    GPT-2 run the host throws away); Skip is not a stop (the host goes on with the next images)."""
    state = host.shared.state

    class InterruptingExpander(FakeExpander):
        def expand(self, prompt: str, seed: int) -> str:
            if len(self.calls) == 2:
                state.interrupt()
            return super().expand(prompt, seed)

    expander = InterruptingExpander()
    script.runtime.get_expander = lambda: expander
    p = make_p(host, prompt="a cat", batch_size=4, n_iter=2, seed=10)
    script.process(p, {"enabled": True, "styles": [], "expansion": True})
    assert [seed for _prompt, seed in expander.calls] == [10, 11, 12]
    assert p.all_prompts[:3] == [f"a cat BREAK exp{seed} words" for seed in (10, 11, 12)]
    assert p.all_prompts[3:] == ["a cat"] * 5

    state.interrupted = False
    state.skip()
    expander.calls.clear()
    p = make_p(host, prompt="a cat", batch_size=3, seed=20)
    script.process(p, {"enabled": True, "styles": [], "expansion": True})
    assert len(expander.calls) == 3


def test_unload_also_runs_for_a_failed_generation(host, script, monkeypatch) -> None:
    """A1111/Forge call no postprocess when the sampling raises: the unload must not wait for it."""
    host.shared.opts.add_option(settings.KEY_EXPANSION_UNLOAD, host.shared.OptionInfo(True))
    script.context = FooocusContext(load_style_library=lambda: LIBRARY, make_adapter=lambda: script.adapter)
    script.runtime = Runtime(script.context)
    service = script.context.expansion_service()
    unloaded = []
    monkeypatch.setattr(service, "unload", lambda: unloaded.append(True))
    monkeypatch.setattr(service, "expand", lambda prompt, seed, **_: f"{prompt}, expanded")
    monkeypatch.setattr(service, "expand_batch", lambda prompt, seeds, **_: [f"{prompt}, expanded" for _ in seeds])
    p = make_p(host, prompt="a cat")
    script.process(p, {"enabled": True, "expansion": True, "styles": []})
    assert p.all_prompts == ["a cat BREAK a cat, expanded"]
    # ... the host's sampling raises here; postprocess is never called
    assert unloaded == [True]


class FailingAdapter(FakeAdapter):
    def begin_generation(self, p, params, *, filter_method="auto"):
        self.calls.append(("begin", params))
        raise RuntimeError("no hooks today")


def test_failed_hook_install_leaves_the_generation_as_without_fooocus(host, script, caplog) -> None:
    adapter = FailingAdapter()
    script.runtime.get_adapter = lambda: adapter
    p = make_p(host, prompt="a cat", negative_prompt="ugly", batch_size=2)
    before = snapshot(p)
    with caplog.at_level(logging.ERROR):
        script.process(p, {"enabled": True, "styles": ["Warm Light"], "expansion": True})
    assert "could not install the sampling hooks" in caplog.text and "no hooks today" in caplog.text
    assert snapshot(p) == before  # no "Fooocus: True" in the infotext, prompts not styled
    assert script.expander.calls == []
    script.process_batch(p, batch_number=0, prompts=[], seeds=[], subseeds=[])
    script.postprocess(p, None)
    assert [kind for kind, _ in adapter.calls] == ["begin", "end"]  # the cleanup, nothing after it


class BatchingExpander(FakeExpander):
    """An expander with `expand_batch`, as the real service has."""

    def __init__(self):
        super().__init__()
        self.batches: list[tuple[str, list[int]]] = []

    def expand_batch(self, prompt: str, seeds: list[int]) -> list[str]:
        self.batches.append((prompt, list(seeds)))
        return [f"exp{seed} words" for seed in seeds]


def test_a_batch_is_expanded_in_one_call_per_host_batch(host, script) -> None:
    expander = BatchingExpander()
    script.runtime.get_expander = lambda: expander
    p = make_p(host, prompt="a cat", batch_size=4, n_iter=2, seed=10, enable_hr=True, hr_prompt="a dog")
    p.all_seeds[5] = p.all_seeds[4]  # equal (text, seed) pairs are expanded once
    script.process(p, {"enabled": True, "styles": [], "expansion": True})
    assert expander.batches == [
        ("a cat", [10, 11, 12, 13]),
        ("a cat", [14, 16, 17]),
        ("a dog", [10, 11, 12, 13]),
        ("a dog", [14, 16, 17]),
    ]
    assert expander.calls == []  # no one-seed calls
    seeds = [10, 11, 12, 13, 14, 14, 16, 17]
    assert p.all_prompts == [f"a cat BREAK exp{seed} words" for seed in seeds]
    assert p.all_hr_prompts == [f"a dog BREAK exp{seed} words" for seed in seeds]


def test_interrupt_stops_the_batched_expansions_between_batches(host, script) -> None:
    state = host.shared.state

    class InterruptingBatches(BatchingExpander):
        def expand_batch(self, prompt: str, seeds: list[int]) -> list[str]:
            state.interrupt()
            return super().expand_batch(prompt, seeds)

    expander = InterruptingBatches()
    script.runtime.get_expander = lambda: expander
    p = make_p(host, prompt="a cat", batch_size=3, n_iter=3, seed=10)
    script.process(p, {"enabled": True, "styles": [], "expansion": True})
    assert expander.batches == [("a cat", [10, 11, 12])]
    assert p.all_prompts[:3] == [f"a cat BREAK exp{seed} words" for seed in (10, 11, 12)]
    assert p.all_prompts[3:] == ["a cat"] * 6
