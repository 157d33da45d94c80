"""Benchmark: what the extension adds to the WebUI's start-up, with the fake host modules of the tests.

    python bench/startup.py [--host a1111-1.10] [--repeats 5] [--json]

Each repeat is a fresh interpreter that first imports what the host has already imported before it
loads extensions (torch, gradio, fastapi), then times, as the host does:
- loading `scripts/fooocus.py` (which imports `lib_fooocus` and registers the callbacks),
- the `on_ui_settings` and `on_before_ui` callbacks (settings section, X/Y/Z axes),
- building the accordion for txt2img and img2img (our real style library included; the host's own
  `gr.Blocks` and prompt/seed boxes are built outside the timed part),
and lists which of transformers / huggingface_hub the extension imported by then (target: none; they
are loaded on first use of the prompt expansion; gradio 4 itself imports huggingface_hub, which the
host has therefore loaded already and is not counted). Prints the medians; target total <= 0.3 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY_AT_START = ("transformers", "huggingface_hub")

PROBE = r"""
import importlib.util, json, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
import torch, gradio as gr, fastapi  # the host's own imports, done before extensions load
import webui_fakes

before = set(sys.modules)  # gradio itself imports huggingface_hub: only what we add counts
fakes = webui_fakes.install({host!r})
timings = {{}}
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("fooocus_script_startup", {script!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
timings["import"] = time.perf_counter() - start

start = time.perf_counter()
for category in ("ui_settings", "before_ui"):
    for callback in fakes.script_callbacks.callbacks.get(category, []):
        callback()
timings["callbacks"] = time.perf_counter() - start

# The Blocks and the tab's own boxes are the host's (gradio 4 builds an app per Blocks, ~1 s here):
# only the Script's own work inside them is timed.
timings["ui"] = 0.0
for is_img2img in (False, True):
    tab = "img2img" if is_img2img else "txt2img"
    with gr.Blocks():
        start = time.perf_counter()
        script = module.FooocusScript()
        script.is_img2img = is_img2img
        timings["ui"] += time.perf_counter() - start
        prompt = gr.Textbox(elem_id=f"{{tab}}_prompt")
        seed = gr.Number(elem_id=f"{{tab}}_seed")
        start = time.perf_counter()
        script.after_component(prompt, elem_id=f"{{tab}}_prompt")
        script.after_component(seed, elem_id=f"{{tab}}_seed")
        script.ui(is_img2img)
        timings["ui"] += time.perf_counter() - start
heavy = sorted(name for name in {heavy!r} if name in sys.modules and name not in before)
print("STARTUP-JSON:" + json.dumps({{"timings": timings, "heavy": heavy}}))
"""


def measure_once(host: str) -> dict:
    code = PROBE.format(repo=str(REPO), tests=str(REPO / "tests"), host=host,
                        script=str(REPO / "scripts" / "fooocus.py"), heavy=HEAVY_AT_START)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600,
                          check=False)
    if done.returncode != 0 or "STARTUP-JSON:" not in done.stdout:
        raise RuntimeError(done.stderr[-4000:])
    return json.loads(done.stdout.split("STARTUP-JSON:", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="a1111-1.10", choices=("a1111-1.6", "a1111-1.10", "forge-main"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one run's raw result as JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(measure_once(args.host)))
        return
    runs = [measure_once(args.host) for _ in range(args.repeats)]
    parts = ("import", "callbacks", "ui")
    medians = {part: statistics.median(run["timings"][part] for run in runs) for part in parts}
    total = statistics.median(sum(run["timings"].values()) for run in runs)
    print(f"host {args.host} (fake modules), {args.repeats} fresh interpreters, medians:")
    for part in parts:
        print(f"  {part:10s} {medians[part] * 1000:8.1f} ms")
    print(f"  {'total':10s} {total * 1000:8.1f} ms  (target <= 300 ms: {'met' if total <= 0.3 else 'NOT met'})")
    heavy = sorted({name for run in runs for name in run["heavy"]})
    print(f"imported at start among {', '.join(HEAVY_AT_START)}: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
