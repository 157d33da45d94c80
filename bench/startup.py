"""Benchmark: what the extension adds to the WebUI's start-up, with the fake host modules of the tests
(and, with `--webui`, on a real host with the host's own start-up profiler).

    python bench/startup.py [--host a1111-1.10] [--repeats 5] [--python PY] [--no-bytecode-cache] [--json]
    python bench/startup.py --webui DIR --webui-python PY [--webui-repeats 1]   # a real host

Each repeat is a fresh interpreter that first imports what the host has already imported before it
loads extensions (torch, gradio, fastapi: not counted), then times, as the host does:
- loading `scripts/fooocus.py` (which imports `lib_fooocus` and registers the callbacks),
- the `on_ui_settings` and `on_before_ui` callbacks (settings section, X/Y/Z axes),
- building the accordion for txt2img and img2img (our real style library included; the host's own
  `gr.Blocks` and prompt/seed boxes are built outside the timed part),
- the `on_app_started` callback (REST routes, the API argument check) on a FastAPI app,
and lists which of the heavy modules (transformers, huggingface_hub, safetensors, tokenizers) the
extension imported by then (target: none; they are loaded on first use of the prompt expansion; what
gradio itself imports, the host has loaded already and is not counted), which of our modules were
imported and which files were opened (no style file read twice, nothing in the expansion folder read:
`tests/test_startup.py` checks these). Prints the medians, the UI build's main parts, and the same
total relative to importing gradio in the same interpreter (a yardstick that slows down with the
machine as we do); target total <= 0.3 s. Bytecode is cached as a host caches it (see
`bytecode_env`); `--no-bytecode-cache` measures a start that compiles every module. `--python` runs
the probe under another interpreter (e.g. A1111's venv, gradio 3.41; ours has gradio 4.40 as Forge).

`--webui DIR` starts a real WebUI (the launcher of tests/webui, UI mode, `--log-startup`) with this
checkout and `bench/startup_probe` linked into its extensions, and prints the host's own start-up
profiler figures for our script file: its import ("load scripts/fooocus.py"), its UI build (timed by
the probe around the host's `create_script_ui`, both tabs) and its `app_started` callback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY_AT_START = ("transformers", "huggingface_hub", "safetensors", "tokenizers")
PROBE_LINK = "aa-fooocus-startup-probe"  # sorts before the other extensions: loads before them

PROBE = r"""
import collections, functools, importlib.util, json, os, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
import torch  # the host's own imports, done before extensions load
start = time.perf_counter()
import gradio as gr  # the yardstick: what importing gradio costs on this machine right now
gradio_import = time.perf_counter() - start
import fastapi
import webui_fakes

# Files opened from here on (not code, not the interpreter's or site-packages' own files), per phase.
phase = ["setup"]
opened = collections.defaultdict(list)
skipped_roots = tuple(sorted({{sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(gr.__file__)}}))
def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.fsdecode(args[0])
        code = path.endswith((".py", ".so")) or ".pyc" in os.path.basename(path)  # .pyc.<n>: bytecode being written
        if not code and not path.startswith(skipped_roots):
            opened[phase[0]].append(os.path.abspath(path))
sys.addaudithook(audit)

before = set(sys.modules)  # gradio itself imports huggingface_hub: only what we add counts
fakes = webui_fakes.install({host!r}, models_path={models_path!r})

# The hosts' add_callback finds the registering file with inspect.stack() (its cost depends on the
# registering thread's stack and on sys.modules): the fake registrations do the same, from a frame
# of a module (as the host's script_callbacks.py is one), so only our own frames make a difference.
exec(compile(
    "def walks_the_stack(register):\n"
    "    import functools, inspect\n"
    "    @functools.wraps(register)\n"
    "    def add_callback(*args, **kwargs):\n"
    "        [frame for frame in inspect.stack() if frame.filename != __file__]\n"
    "        return register(*args, **kwargs)\n"
    "    return add_callback\n",
    webui_fakes.fake_modules.__file__, "exec"), vars(webui_fakes.fake_modules))
walks_the_stack = webui_fakes.fake_modules.walks_the_stack
walks_the_stack(lambda: None)()  # the host's own scripts register callbacks before ours: inspect's cache is warm
for name in dir(fakes.script_callbacks):
    if name.startswith("on_"):
        setattr(fakes.script_callbacks, name, walks_the_stack(getattr(fakes.script_callbacks, name)))
timings = {{}}
cpu = 0.0  # CPU time of the process in the timed parts: what a loaded machine's wall clock hides
phase[0] = "import"
start = time.perf_counter(); cpu_start = time.process_time()
spec = importlib.util.spec_from_file_location("fooocus_script_startup", {script!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
timings["import"] = time.perf_counter() - start
cpu += time.process_time() - cpu_start
after_import = set(sys.modules)

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
phase[0] = "setup"
from lib_fooocus.webui import hooks, style_picker, ui as ui_module, ui_tools
timed(module.CONTEXT, "style_library", "style library")
timed(module.CONTEXT, "expansion_state", "expansion status")
timed(style_picker, "build_style_picker", "style picker")
timed(ui_tools, "build_defaults_row", "defaults row")
timed(ui_tools, "build_import_group", "import group")
timed(ui_module, "_build_schedule_plot", "schedule plot")
timed(ui_module, "_build_refiner", "refiner row")

phase[0] = "callbacks"
start = time.perf_counter(); cpu_start = time.process_time()
for category in ("ui_settings", "before_ui"):
    for callback in fakes.script_callbacks.callbacks.get(category, []):
        callback()
timings["callbacks"] = time.perf_counter() - start
cpu += time.process_time() - cpu_start

# The Blocks and the tab's own boxes are the host's (gradio 4 builds an app per Blocks, ~1 s here):
# only the Script's own work inside them is timed.
timings["ui"] = 0.0
components = 0
for is_img2img in (False, True):
    tab = "img2img" if is_img2img else "txt2img"
    with gr.Blocks() as blocks:
        phase[0] = "ui " + tab
        start = time.perf_counter(); cpu_start = time.process_time()
        script = module.FooocusScript()
        script.is_img2img = is_img2img
        timings["ui"] += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        phase[0] = "setup"
        prompt = gr.Textbox(elem_id=f"{{tab}}_prompt")
        seed = gr.Number(elem_id=f"{{tab}}_seed")
        host_blocks = len(blocks.blocks)
        phase[0] = "ui " + tab
        start = time.perf_counter(); cpu_start = time.process_time()
        script.after_component(prompt, elem_id=f"{{tab}}_prompt")
        script.after_component(seed, elem_id=f"{{tab}}_seed")
        script.ui(is_img2img)
        timings["ui"] += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        phase[0] = "setup"
        components += len(blocks.blocks) - host_blocks

phase[0] = "app_started"
app = fastapi.FastAPI()
start = time.perf_counter(); cpu_start = time.process_time()
for callback in fakes.script_callbacks.callbacks.get("app_started", []):
    callback(None, app)
timings["app_started"] = time.perf_counter() - start
cpu += time.process_time() - cpu_start
phase[0] = "done"
status = module.CONTEXT.expansion_status()  # what the accordion showed (after the timed parts)

added = set(sys.modules) - before
heavy = sorted(name for name in {heavy!r} if name in added)
ours = sorted(name for name in added if name.split(".")[0] == "lib_fooocus")
ours_at_import = sorted(name for name in after_import - before if name.split(".")[0] == "lib_fooocus")
print("STARTUP-JSON:" + json.dumps({{
    "timings": timings, "heavy": heavy, "parts": dict(parts), "gradio_import": gradio_import, "cpu": cpu,
    "gradio_version": gr.__version__, "python": sys.executable, "components": components,
    "modules": ours, "modules_at_import": ours_at_import, "expansion_status": status, "opened": {{k: v for k, v in opened.items() if k != "setup"}},
}}))
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


def measure_once(host: str, bytecode_cache: bool = False, python: str | None = None,
                 models_path: str = "/tmp/fooocus-test-models") -> dict:
    """One fresh interpreter's start-up (see PROBE); `models_path` is the fake host's models folder
    (the expansion folder is `<models_path>/prompt_expansion/fooocus_expansion`)."""
    code = PROBE.format(repo=str(REPO), tests=str(REPO / "tests"), host=host, models_path=models_path,
                        script=str(REPO / "scripts" / "fooocus.py"), heavy=HEAVY_AT_START)
    done = subprocess.run([python or sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          timeout=900, check=False, env=bytecode_env(bytecode_cache))
    if done.returncode != 0 or "STARTUP-JSON:" not in done.stdout:
        raise RuntimeError(done.stderr[-4000:])
    return json.loads(done.stdout.split("STARTUP-JSON:", 1)[1])


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def print_fake_host(runs: list[dict], args: argparse.Namespace, loads: tuple[str, str], cache: bool) -> None:
    parts = ("import", "callbacks", "ui", "app_started")
    medians = {part: statistics.median(run["timings"][part] for run in runs) for part in parts}
    totals = [sum(run["timings"].values()) for run in runs]
    total = statistics.median(totals)
    gradio = statistics.median(run["gradio_import"] for run in runs)
    ratio = statistics.median(t / run["gradio_import"] for t, run in zip(totals, runs))
    bytecode = "bytecode cached (every start after the first)" if cache else "compiled from source every run"
    first = runs[0]
    print(f"host {args.host} (fake modules), gradio {first['gradio_version']} ({first['python']}), "
          f"{args.repeats} fresh interpreters, {bytecode}; load average (1/5/15 min) before {loads[0]}, "
          f"after {loads[1]}, {os.cpu_count()} CPUs; medians:")
    for part in parts:
        print(f"  {part:24s} {medians[part] * 1000:8.1f} ms")
        if part == "ui":
            print(f"    ({first['components']} gradio blocks of ours in the two tabs; the parts below are inside it)")
            names = sorted({name for run in runs for name in run["parts"]})
            for name in names:
                value = statistics.median(run["parts"].get(name, 0.0) for run in runs)
                print(f"    of which {name:17s} {value * 1000:8.1f} ms")
    print(f"  {'total':24s} {total * 1000:8.1f} ms  (target <= 300 ms: {'met' if total <= 0.3 else 'NOT met'})")
    print(f"  {'total, CPU time':24s} {statistics.median(run['cpu'] for run in runs) * 1000:8.1f} ms  "
          "(of the probe's process: the same work without the waits for a CPU)")
    print(f"  yardstick: import gradio {gradio * 1000:8.1f} ms in the same interpreters; "
          f"total / import gradio = {ratio:.3f} (median of per-run ratios)")
    heavy = sorted({name for run in runs for name in run["heavy"]})
    print(f"imported at start among {', '.join(HEAVY_AT_START)}: {', '.join(heavy) or 'none'}")
    print(f"our modules imported: {len(first['modules_at_import'])} by the script's import, "
          f"{len(first['modules'])} by the end of start-up")
    opened = {phase: len(paths) for phase, paths in first["opened"].items()}
    print(f"files opened per phase (besides code): {opened or 'none'}")


PROBE_LINE = re.compile(r"^startup-probe: (load|ui|app_started) ([\d.]+) ([\d.]+) (.+)$", re.MULTILINE)
HOST_LOAD_LINE = re.compile(r"^\s+fooocus\.py: done in ([\d.]+)s", re.MULTILINE)  # --log-startup, "load scripts"
STARTUP_TIME_LINE = re.compile(r"Startup time: ([\d.]+)s")
PARTS = ("load", "ui", "app_started")


def measure_webui(log_path: Path) -> dict:
    """One start of a real WebUI with the probe linked: per part, (wall, CPU) seconds of ours and of
    every other script file together; the host's own line for our file's import; its total."""
    sys.path.insert(0, str(REPO / "tests" / "webui"))
    from webui_host import running_webui

    webui = Path(os.environ["SD_WEBUI_DIR"]).resolve()
    link = webui / "extensions" / PROBE_LINK
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(REPO / "bench" / "startup_probe", target_is_directory=True)
    try:
        with running_webui(ui=True, log_path=log_path, extra_args=["--log-startup"]):
            pass
    finally:
        link.unlink()
    text = log_path.read_text(errors="replace")
    ours = {part: [0.0, 0.0] for part in PARTS}
    others = {part: [0.0, 0.0] for part in PARTS}
    for part, wall, cpu, path in PROBE_LINE.findall(text):
        # Ours: the script file and the callbacks lib_fooocus/webui/hooks.py registers.
        mine = Path(path.strip()).resolve().is_relative_to(REPO)
        target = (ours if mine else others)[part]
        target[0] += float(wall)
        target[1] += float(cpu)
    host_load = HOST_LOAD_LINE.search(text)
    total = STARTUP_TIME_LINE.search(text)
    return {"ours": ours, "others": others, "host_load": float(host_load[1]) if host_load else None,
            "total": float(total[1]) if total else None, "log": str(log_path)}


def print_webui(runs: list[dict], loads: tuple[str, str]) -> None:
    print(f"real WebUI {os.environ['SD_WEBUI_DIR']} ({os.environ.get('SD_WEBUI_PYTHON', '')}), {len(runs)} start(s) "
          f"with --log-startup; load average (1/5/15 min) before {loads[0]}, after {loads[1]}. Seconds, wall-clock "
          "/ CPU time of the thread doing it (bench/startup_probe), and the host's own 'load scripts' line:")
    for number, run in enumerate(runs, 1):
        parts = ", ".join(f"{part} {run['ours'][part][0]:.3f}/{run['ours'][part][1]:.3f}" for part in PARTS)
        wall = sum(run["ours"][part][0] for part in PARTS)
        cpu = sum(run["ours"][part][1] for part in PARTS)
        others = sum(run["others"][part][1] for part in PARTS)
        print(f"  start {number}: ours {parts}; sum {wall:.3f}/{cpu:.3f} (target <= 0.3); host's line "
              f"'fooocus.py: done in {run['host_load']}s'; every other script file's CPU {others:.3f}; "
              f"Startup time {run['total']} s ({run['log']})")
    later = runs[1:] or runs  # the first start after a change compiles our modules
    for kind, index in (("wall", 0), ("CPU", 1)):
        figures = {part: statistics.median(run["ours"][part][index] for run in later) for part in PARTS}
        listed = ", ".join(f"{part} {value:.3f}" for part, value in figures.items())
        print(f"  ours, {kind}, median of starts {2 if len(runs) > 1 else 1}-{len(runs)}: {listed}; "
              f"sum {sum(figures.values()):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="a1111-1.10", choices=("a1111-1.6", "a1111-1.10", "forge-main"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--python", help="interpreter for the probe (default: this one), e.g. a host's venv python")
    parser.add_argument("--json", action="store_true", help="print one run's raw result as JSON")
    parser.add_argument("--models-path", default="/tmp/fooocus-test-models", help="the fake host's models folder")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="compile every module from source in every run (a first start; or any start "
                             "with PYTHONDONTWRITEBYTECODE set)")
    parser.add_argument("--webui", help="measure a real WebUI in this folder instead (sets SD_WEBUI_DIR)")
    parser.add_argument("--webui-python", help="its interpreter (sets SD_WEBUI_PYTHON)")
    parser.add_argument("--webui-repeats", type=int, default=3,
                        help="starts of the host; the first start after a change compiles our modules (writes "
                             "their bytecode), the later ones read it: compare the later ones")
    args = parser.parse_args()
    cache = not args.no_bytecode_cache
    if args.json:  # one run, as tests/test_startup.py uses it
        print(json.dumps(measure_once(args.host, python=args.python, models_path=args.models_path)))
        return
    if args.webui:
        os.environ["SD_WEBUI_DIR"] = args.webui
        if args.webui_python:
            os.environ["SD_WEBUI_PYTHON"] = args.webui_python
        load_before = load_average()
        folder = Path(tempfile.mkdtemp(prefix="fooocus-startup-"))  # the logs are kept: the host's own lines
        runs = [measure_webui(folder / f"webui-{i + 1}.log") for i in range(args.webui_repeats)]
        print_webui(runs, (load_before, load_average()))
        return
    if cache:  # writes the bytecode: the host's first start, not timed
        measure_once(args.host, bytecode_cache=True, python=args.python, models_path=args.models_path)
    load_before = load_average()
    runs = [measure_once(args.host, bytecode_cache=cache, python=args.python, models_path=args.models_path)
            for _ in range(args.repeats)]
    print_fake_host(runs, args, (load_before, load_average()), cache)


if __name__ == "__main__":
    main()
