"""Build the Fooocus accordion with fake host modules under whatever gradio is installed and print
a JSON summary. Run by the UI tests with the main interpreter (gradio 4) and with the gradio 3
environment, so both lines are checked by the same code.

    python tests/webui_fakes/ui_probe.py [HOST ...]   # a1111-1.6, a1111-1.10, forge-main (default: all)
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _dependencies(demo) -> list[dict]:
    config = demo.get_config_file()
    out = []
    for dep in config["dependencies"]:
        targets = [t[0] if isinstance(t, (list, tuple)) else t for t in dep.get("targets", [])]
        out.append({"targets": targets, "inputs": dep.get("inputs", []), "outputs": dep.get("outputs", [])})
    return out


def _function_for(demo, index: int):
    fns = demo.fns
    block_fn = fns[index] if isinstance(fns, list) else list(fns.values())[index]
    return block_fn.fn


def summarize(component) -> dict:
    info = {"type": type(component).__name__, "label": getattr(component, "label", None),
            "value": component.value, "elem_id": getattr(component, "elem_id", None)}
    for key in ("minimum", "maximum", "step"):
        if hasattr(component, key):
            info[key] = getattr(component, key)
    return info


def main(host: str) -> dict:
    for path in (str(REPO), str(HERE.parent)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import webui_fakes

    fakes = webui_fakes.install(host)
    import gradio as gr

    from lib_fooocus.styles.library import StyleLibrary
    from lib_fooocus.webui import context as context_module
    from lib_fooocus.webui.context import FooocusContext

    calls = []

    class Expander:
        retries = 0

        def expand(self, prompt, seed, wait=None):
            calls.append((prompt, seed))
            return f"expanded({prompt}|{seed})"

        def finish_generation(self):
            pass

        def status(self):
            return f"status after {self.retries} retries"

        def forget_failure(self):
            self.retries += 1

    import os
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="fooocus-probe-"))
    (work / "bundled").mkdir()
    (work / "bundled" / "styles.json").write_text(json.dumps([
        {"name": "Warm Light", "prompt": "{prompt}, warm light", "negative_prompt": "cold"},
        {"name": "Clean Quality Negative", "prompt": "", "negative_prompt": "blurry"},
    ]), encoding="utf-8")
    os.environ["SD_WEBUI_FOOOCUS_STYLES_DIR"] = str(work / "user")  # where the imports write
    (work / "host_styles.csv").write_text("name,prompt,negative_prompt\nHost Look,{prompt} in host look,\n",
                                          encoding="utf-8")
    fakes.shared.styles_filename = str(work / "host_styles.csv")  # A1111 1.7's one path

    def load_library():
        return StyleLibrary.load([work / "bundled", work / "user"])

    context = FooocusContext(load_style_library=load_library, make_expansion_service=lambda _settings: Expander())
    spec = importlib.util.spec_from_file_location("fooocus_script_probe", REPO / "scripts" / "fooocus.py")
    module = importlib.util.module_from_spec(spec)
    context_module.FooocusContext = lambda: context  # the Script file creates its context when loaded
    try:
        spec.loader.exec_module(module)
    finally:
        context_module.FooocusContext = FooocusContext

    result = {"gradio": gr.__version__, "host": host, "tabs": {}}
    for is_img2img in (False, True):
        tab = "img2img" if is_img2img else "txt2img"
        script = module.FooocusScript()
        script.is_img2img = is_img2img
        with gr.Blocks() as demo:
            prompt = gr.Textbox(value="a cat <lora:x:1>", elem_id=f"{tab}_prompt")
            script.after_component(prompt, elem_id=f"{tab}_prompt")
            seed = gr.Number(value=1234, elem_id=f"{tab}_seed")
            script.after_component(seed, elem_id=f"{tab}_seed")
            steps = gr.Slider(minimum=1, maximum=150, value=30, step=1, elem_id=f"{tab}_steps")
            script.after_component(steps, elem_id=f"{tab}_steps")
            cfg = gr.Slider(minimum=1, maximum=30, value=9, step=0.5, elem_id=f"{tab}_cfg_scale")
            script.after_component(cfg, elem_id=f"{tab}_cfg_scale")
            forge = host.startswith("forge")
            sampler_names = ["Euler a", "DPM++ 2M", "DPM++ 2M SDE"] + ([] if forge else ["DPM++ 2M SDE Karras"])
            sampler = gr.Dropdown(choices=sampler_names, value="DPM++ 2M", elem_id=f"{tab}_sampling")
            script.after_component(sampler, elem_id=f"{tab}_sampling")
            if forge:
                scheduler = gr.Dropdown(choices=["Automatic", "Uniform", "Karras"], value="Automatic",
                                        elem_id=f"{tab}_scheduler")
                script.after_component(scheduler, elem_id=f"{tab}_scheduler")
            width = gr.Slider(minimum=64, maximum=2048, step=8, value=512, elem_id=f"{tab}_width")
            script.after_component(width, elem_id=f"{tab}_width")
            height = gr.Slider(minimum=64, maximum=2048, step=8, value=512, elem_id=f"{tab}_height")
            script.after_component(height, elem_id=f"{tab}_height")
            components = script.ui(is_img2img)
        deps = _dependencies(demo)
        button_id = next(c._id for c in demo.blocks.values() if getattr(c, "elem_id", "") == script.elem_id("expansion_preview"))
        preview = [i for i, d in enumerate(deps) if button_id in d["targets"]]
        preview_result = None
        if preview:
            dep = deps[preview[0]]
            preview_result = {
                "inputs_are_tab_boxes": dep["inputs"] == [prompt._id, seed._id],
                "text": _function_for(demo, preview[0])("a cat <lora:x:1>", 1234),
            }
        status_box = next(
            (c for c in demo.blocks.values() if getattr(c, "elem_id", "") == script.elem_id("expansion_status")), None
        )
        retry_id = next(
            (c._id for c in demo.blocks.values() if getattr(c, "elem_id", "") == script.elem_id("expansion_retry")), None
        )
        retry = [i for i, d in enumerate(deps) if retry_id in d["targets"]]
        refresh_id = next((c._id for c in demo.blocks.values()
                           if getattr(c, "elem_id", "") == script.elem_id("expansion_status_refresh")), None)
        refresh = [i for i, d in enumerate(deps) if refresh_id in d["targets"]]
        status_result = {
            "refresh_outputs_status": bool(refresh) and deps[refresh[0]]["outputs"] == [getattr(status_box, "_id", None)],
            "refresh_text": _function_for(demo, refresh[0])() if refresh else None,
            "value": getattr(status_box, "value", None),
            "retry_outputs_status": bool(retry) and deps[retry[0]]["outputs"] == [getattr(status_box, "_id", None)],
            "retry_text": _function_for(demo, retry[0])() if retry else None,
            "preview_updates_status": any(
                d["outputs"] == [getattr(status_box, "_id", None)] for i, d in enumerate(deps) if i not in retry + refresh
            ),
        }
        plot = next(
            (c for c in demo.blocks.values() if getattr(c, "elem_id", "") == script.elem_id("schedule_plot")), None
        )
        redraws = [i for i, d in enumerate(deps) if plot is not None and d["outputs"] == [plot._id]]
        by_id = {c._id: getattr(c, "elem_id", None) for c in demo.blocks.values()}
        raw_deps = demo.get_config_file()["dependencies"]
        # a change of an input asks the page for a drawing (no server call); the hidden button draws
        from lib_fooocus.webui.schedule_plot import request_js

        request = request_js(script.elem_id("schedule_plot") + "_redraw")
        triggers = sorted({_target_id(t) for i, d in enumerate(raw_deps) if d.get("js") == request
                           and not d.get("backend_fn") for t in d["targets"]})
        followers = [d for d in raw_deps if redraws and d.get("trigger_after") == redraws[0]]
        schedule_result = {
            "initial": getattr(plot, "value", None),
            "triggers": sorted(str(by_id.get(t)) for t in triggers),
            "drawn_by": sorted(str(by_id.get(_target_id(t))) for i in redraws for t in raw_deps[i]["targets"]),
            "checked_after": [(bool(d.get("js")) and "fooocusPlot.check" in d["js"], d.get("backend_fn"))
                              for d in followers],
            "host_inputs": bool(redraws) and all(
                c._id in deps[i]["inputs"] for i in redraws for c in (steps, cfg, sampler)
            ),
            "redrawn": _function_for(demo, redraws[0])(2, 7, 0.3, 10, 9, "Euler a", None) if redraws else None,
        }
        tools = _tools(demo, deps, script, by_id)
        # The API builds the UI again, for its defaults, in a throw-away Blocks: the earlier boxes
        # must not be wired into it.
        with gr.Blocks() as throwaway:
            again = script.ui(is_img2img)
        throwaway_deps = _dependencies(throwaway)
        result["tabs"][tab] = {
            "components": [summarize(c) for c in components],
            "defaults_again": [c.value for c in again],
            "infotext_fields": len(script.infotext_fields),
            "paste_api_fields": [getattr(f, "api", None) for f in script.infotext_fields if getattr(f, "api", None)],
            "preview": preview_result,
            "status": status_result,
            "schedule": schedule_result,
            "tools": tools,
            "throwaway_uses_old_boxes": any(
                prompt._id in d["inputs"] or seed._id in d["inputs"] for d in throwaway_deps
            ),
            "elem_ids": sorted(str(getattr(b, "elem_id", "")) for b in demo.blocks.values() if getattr(b, "elem_id", None)),
        }
    result["starts_open"] = _starts_open(module, gr, fakes)
    result["callbacks"] = {k: len(v) for k, v in fakes.script_callbacks.callbacks.items()}
    return result


def _target_id(target):
    """A dependency target's component id (gradio 4 lists (id, event) pairs, gradio 3 ids)."""
    return target[0] if isinstance(target, (list, tuple)) else target


def _tools(demo, deps, script, by_id) -> dict:
    """The defaults row and the import group: which controls each event reads and writes (by
    elem_id), and what the callbacks return for sample inputs."""

    def find(name):
        return next((i for i, d in enumerate(deps) if any(by_id.get(t) == script.elem_id(name) for t in d["targets"])
                     and _function_for(demo, i) is not None), None)

    def ids(index, key):
        return [str(by_id.get(c)) for c in deps[index][key]] if index is not None else None

    def plain(update):
        if isinstance(update, dict):
            return {k: v for k, v in update.items() if k != "__type__"}
        return update

    out = {}
    index = find("defaults")
    if index is not None:
        out["defaults"] = {"inputs": ids(index, "inputs"), "outputs": ids(index, "outputs"),
                           "quality": [plain(u) for u in _function_for(demo, index)("Quality")]}
    raw = demo.get_config_file()["dependencies"]

    def page_only(name):
        """The events of our control `name` as the page gets them: which event (change, input…),
        inputs, outputs, code, server fn."""
        return [{"event": _event_name(raw[i]), "inputs": ids(i, "inputs"), "outputs": ids(i, "outputs"),
                 "js": raw[i].get("js"), "backend": raw[i].get("backend_fn")}
                for i, d in enumerate(deps) if any(by_id.get(t) == script.elem_id(name) for t in d["targets"])]

    out["performance"] = page_only("performance")
    out["resolution"] = page_only("resolution")
    sync = [raw[i] for i, d in enumerate(deps)
            if any(str(by_id.get(t, "")).endswith(("_width", "_height")) for t in d["targets"])
            and any(by_id.get(o) == script.elem_id("resolution") for o in d["outputs"])]
    out["resolution_sync"] = [{"inputs": [str(by_id.get(c)) for c in d["inputs"]], "js": d.get("js"),
                               "backend": d.get("backend_fn")} for d in sync]
    index = find("import_csv")
    if index is not None:
        result = _function_for(demo, index)("", ["Warm Light"])
        out["import_csv"] = {"inputs": ids(index, "inputs"), "outputs": ids(index, "outputs"),
                             "result": [plain(u) for u in result]}
    index = find("import_fooocus")
    out["import_fooocus_outputs"] = ids(index, "outputs")

    def followers(name):
        """What runs after the event of our control `name` (`.then`): its page code, its server fn."""
        first = find(name)
        return [{"js": raw[i].get("js"), "backend": raw[i].get("backend_fn")}
                for i in range(len(raw)) if first is not None and raw[i].get("trigger_after") == first]

    out["import_followers"] = {"fooocus": followers("import_fooocus"), "csv": followers("import_csv")}
    return out


def _starts_open(module, gr, fakes) -> dict:
    """The txt2img accordion built with the "starts open" setting on, as the page's configuration
    (what the browser receives) shows it: the accordion's `open`, the input's value, the carrier."""
    from modules import shared

    saved = dict(shared.opts.data)
    shared.opts.fooocus_accordion_open = True
    try:
        script = module.FooocusScript()
        script.is_img2img = False
        with gr.Blocks() as demo:
            components = script.ui(False)
        config = demo.get_config_file()
    finally:
        shared.opts.data.clear()
        shared.opts.data.update(saved)
    props = {c["props"].get("elem_id"): c["props"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    accordion_id = script.elem_id("enabled")
    carrier = props.get(script.elem_id("tooltips"), {})
    box = components[0]._id
    on_load = [d for d in config["dependencies"] if _is_load(d) and box in d.get("outputs", [])]
    return {
        "accordion_id": accordion_id,
        "has_accordion": accordion_id in props,
        "accordion_open": props.get(accordion_id, {}).get("open"),
        "value": components[0].value,
        "carrier": carrier.get("value"),
        # a page-load event puts True into the input, through gradio, without a backend call
        "load_sets_on": [(d.get("js") or d.get("frontend_fn"), d.get("backend_fn")) for d in on_load],
    }


def _event_name(dependency: dict) -> str | None:
    """The event of a single-trigger dependency: gradio 4 names it in each target, gradio 3 once."""
    targets = dependency.get("targets") or []
    if targets and isinstance(targets[0], (list, tuple)):
        return targets[0][1]
    return dependency.get("trigger")


def _is_load(dependency: dict) -> bool:
    if "targets" in dependency:  # gradio 4: [[block id, event], ...]
        return any(target[1] == "load" for target in dependency["targets"] if isinstance(target, (list, tuple)))
    return dependency.get("trigger") == "load"  # gradio 3


def main_all(hosts: list[str]) -> dict:
    return {host: main(host) for host in hosts}


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["a1111-1.6", "a1111-1.10", "forge-main"]
    print("PROBE-JSON:" + json.dumps(main_all(chosen), default=str))
