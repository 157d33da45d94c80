"""Benchmark: what the extension adds to the WebUI's start-up, with the fake host modules of the tests.

    python bench/startup.py [--host a1111-1.10] [--repeats 5] [--no-bytecode-cache] [--json]

Each repeat is a fresh interpreter that first imports what the host has already imported before it
loads extensions (torch, gradio, fastapi), then times, as the host does:
- loading `scripts/fooocus.py` (which imports `lib_fooocus` and registers the callbacks),
- the `on_ui_settings` and `on_before_ui` callbacks (settings section, X/Y/Z axes),
- building the accordion for txt2img and img2img (our real style library included; the host's own
  `gr.Blocks` and prompt/seed boxes are built outside the timed part),
and lists which of transformers / huggingface_hub the extension imported by then (target: none; they
are loaded on first use of the prompt expansion; gradio 4 itself imports huggingface_hub, which the
host has therefore loaded already and is not counted). Prints the medians, the UI build's main parts,
and the same total relative to importing gradio in the same interpreter (a yardstick that slows down
with the machine as we do); target total <= 0.3 s. Bytecode is cached as a host caches it (see
`bytecode_env`); `--no-bytecode-cache` measures a start that compiles every module.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY_AT_START = ("transformers", "huggingface_hub")

PROBE = r"""
import collections, functools, importlib.util, json, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
import torch  # the host's own imports, done before extensions load
start = time.perf_counter()
import gradio as gr  # the yardstick: what importing gradio costs on this machine right now
gradio_import = time.perf_counter() - start
import fastapi
import webui_fakes

before = set(sys.modules)  # gradio itself imports huggingface_hub: only what we add counts
fakes = webui_fakes.install({host!r})
timings = {{}}
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("fooocus_script_startup", {script!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
timings["import"] = time.perf_counter() - start

# The breakdown of the UI build: the parts below are timed inside it (they are part of "ui").
parts = collections.Counter()
def timed(owner, name, label):
    original = getattr(owner, name)
    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            parts[label] += time.perf_counter() - began
    setattr(owner, name, wrapper)
from lib_fooocus.webui import style_picker, ui as ui_module
timed(module.CONTEXT, "style_library", "style library load")
timed(module.CONTEXT, "expansion_status", "expansion status line")
timed(style_picker, "build_style_picker", "style picker")
timed(ui_module, "_build_schedule_plot", "schedule plot")
timed(ui_module, "_build_refiner", "refiner row")

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
print("STARTUP-JSON:" + json.dumps({{"timings": timings, "heavy": heavy, "parts": dict(parts),
                                     "gradio_import": gradio_import}}))
"""


def bytecode_env(enabled: bool) -> dict[str, str]:
    """The environment of the probe. A host writes bytecode (.pyc) on its first start and reads it on
    every later one; a machine with PYTHONDONTWRITEBYTECODE set would otherwise compile every module
    from source on every start (about half of our import time here). With `enabled`, bytecode goes to
    a private cache folder outside the repository, as a host's own __pycache__ would."""
    env = dict(os.environ)
    if enabled:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "sd-webui-fooocus-bench-pycache")
    return env


def measure_once(host: str, bytecode_cache: bool = False) -> dict:
    code = PROBE.format(repo=str(REPO), tests=str(REPO / "tests"), host=host,
                        script=str(REPO / "scripts" / "fooocus.py"), heavy=HEAVY_AT_START)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=900,
                          check=False, env=bytecode_env(bytecode_cache))
    if done.returncode != 0 or "STARTUP-JSON:" not in done.stdout:
        raise RuntimeError(done.stderr[-4000:])
    return json.loads(done.stdout.split("STARTUP-JSON:", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="a1111-1.10", choices=("a1111-1.6", "a1111-1.10", "forge-main"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one run's raw result as JSON")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every module from source in every run (a first start; or any start "
                             "with PYTHONDONTWRITEBYTECODE set)")
    args = parser.parse_args()
    cache = not args.no_bytecode_cache
    if args.json:
        print(json.dumps(measure_once(args.host)))  # one run, as tests/test_startup.py uses it
        return
    if cache:
        measure_once(args.host, bytecode_cache=True)  # writes the bytecode: the host's first start, not timed
    load_before = os.getloadavg()
    runs = [measure_once(args.host, bytecode_cache=cache) for _ in range(args.repeats)]
    load_after = os.getloadavg()
    parts = ("import", "callbacks", "ui")
    medians = {part: statistics.median(run["timings"][part] for run in runs) for part in parts}
    totals = [sum(run["timings"].values()) for run in runs]
    total = statistics.median(totals)
    gradio = statistics.median(run["gradio_import"] for run in runs)
    ratio = statistics.median(t / run["gradio_import"] for t, run in zip(totals, runs))
    bytecode = "bytecode cached (every start after the first)" if cache else "compiled from source every run"
    print(f"host {args.host} (fake modules), {args.repeats} fresh interpreters, {bytecode}; load average "
          f"(1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, {os.cpu_count()} CPUs; medians:")
    for part in parts:
        print(f"  {part:24s} {medians[part] * 1000:8.1f} ms")
    names = sorted({name for run in runs for name in run["parts"]})
    for name in names:
        print(f"    of which {name:15s} {statistics.median(run['parts'].get(name, 0.0) for run in runs) * 1000:8.1f} ms")
    print(f"  {'total':24s} {total * 1000:8.1f} ms  (target <= 300 ms: {'met' if total <= 0.3 else 'NOT met'})")
    print(f"  yardstick: import gradio {gradio * 1000:8.1f} ms in the same interpreters; "
          f"total / import gradio = {ratio:.3f} (median of per-run ratios)")
    heavy = sorted({name for run in runs for name in run["heavy"]})
    print(f"imported at start among {', '.join(HEAVY_AT_START)}: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
