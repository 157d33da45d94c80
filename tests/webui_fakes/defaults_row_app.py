"""A small gradio page (3.41 or 4.x, whichever runs it) with the tab controls the "Fooocus defaults"
row and the schedule plot use — width/height/steps/CFG sliders as A1111 builds them — the row, the
plot with the three Fooocus sliders it reads, and a "busy" button whose event holds the one queue
worker for a while (as the WebUI's own events or a generation do). The page needs
javascript/fooocus_ui.js injected (the WebUI adds it; the test does).

    python tests/webui_fakes/defaults_row_app.py PORT [--gated]   # prints READY when it serves

`--gated`: the row's page-only events go through a gate the test controls — while the page sets
`window.fooocusTestGate = {holding: true, held: []}`, each event computes its result at once (from
the values it was given) but hands it to gradio only when the test calls its `resume` (`held`:
`{result, resume}` in the order they were computed). That is a slow page made deterministic: an event's result lands late, after what the user
did meanwhile (on gradio 4 a page-only result lands a few animation frames after it was computed).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import gradio as gr

from lib_fooocus.webui import ui_tools
from lib_fooocus.webui.schedule_plot import build_schedule_plot
from lib_fooocus.webui.ui import gradio_major, js_kwarg

BUSY_SECONDS = 6.0


def gated(js_kwarg):
    """`js_kwarg` whose code hands its result over only when the page's test gate lets it (see above)."""

    def wrap(code: str) -> dict[str, str]:
        return js_kwarg("async (...args) => { const result = await (" + code + ")(...args); "
                        "const gate = window.fooocusTestGate; "
                        "if (gate && gate.holding) await new Promise(resume => gate.held.push({result, resume})); "
                        "return result; }")

    return wrap


def build(row_js_kwarg=js_kwarg) -> gr.Blocks:
    with gr.Blocks(analytics_enabled=False) as demo:
        with gr.Row():
            width = gr.Slider(minimum=64, maximum=2048, step=8, label="Width", value=512, elem_id="txt2img_width")
            height = gr.Slider(minimum=64, maximum=2048, step=8, label="Height", value=512, elem_id="txt2img_height")
            steps = gr.Slider(minimum=1, maximum=150, step=1, label="Steps", value=20, elem_id="txt2img_steps")
            cfg = gr.Slider(minimum=1, maximum=30, step=0.5, label="CFG Scale", value=7, elem_id="txt2img_cfg_scale")
        busy = gr.Button("busy", elem_id="busy")
        busy_done = gr.Textbox(elem_id="busy_done")
        busy.click(fn=lambda: time.sleep(BUSY_SECONDS) or "done", inputs=[], outputs=[busy_done])
        row = ui_tools.build_defaults_row(gr, lambda name: "script_txt2img_fooocus_" + name,
                                          {"steps": steps, "width": width, "height": height}, {}, list,
                                          row_js_kwarg, {})
        ui_tools.wire_defaults(gr, row)
        fooocus = {name: gr.Slider(minimum=0, maximum=30, step=0.01, value=value, label=name,
                                   elem_id="script_txt2img_fooocus_" + name)
                   for name, value in (("sharpness", 2.0), ("adaptive_cfg", 7.0), ("adm_scaler_end", 0.3))}
        build_schedule_plot(gr, fooocus, {"steps": steps, "cfg_scale": cfg}, "script_txt2img_fooocus_schedule_plot",
                            js_kwarg)
    return demo


if __name__ == "__main__":
    app = build(gated(js_kwarg) if "--gated" in sys.argv[2:] else js_kwarg)
    app.queue(**({"default_concurrency_limit": 1} if gradio_major() >= 4 else {"concurrency_count": 1}))
    app.launch(server_name="127.0.0.1", server_port=int(sys.argv[1]), prevent_thread_lock=True, show_error=True)
    print("READY", flush=True)
    while True:
        time.sleep(3600)
