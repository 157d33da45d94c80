"""Start-up probe: a tiny WebUI extension used only by `bench/startup.py --webui`.

The host's start-up profiler (`modules/timer.py`, printed with `--log-startup`) times each script
file's import ("load scripts: <file>: done in …") and each `app_started` callback (under the base
name of the file that registered it), in wall-clock time, and builds the UI of all scripts as one
"create ui" item. On a loaded machine wall-clock time mostly says how long the process waited for a
CPU. This probe, linked under a name that sorts before the other extensions (so it loads first
among them), times every later script's import, every Script's UI build (around the host's
`create_script_ui`, both tabs) and every `app_started` callback, each in wall-clock time and in the
CPU time of the thread doing it, and prints one line per item:

    startup-probe: <load|ui|app_started> <wall s> <cpu s> <file>

It changes nothing else. Not part of the extension: it is linked into a host folder by the bench.
"""

import os
import time

from modules import script_callbacks, script_loading, scripts

UI_SECONDS = {}  # script file -> [wall, cpu] over both tabs


def _report_line(kind, wall, cpu, path):
    print(f"startup-probe: {kind} {wall:.4f} {cpu:.4f} {os.path.realpath(path)}", flush=True)


def _profiled(function, *args):
    """`function(*args)` under cProfile, the 30 largest cumulative times printed (to find where a
    script's start-up time goes: `FOOOCUS_STARTUP_PROBE_PROFILE=<script file name>`)."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    try:
        return profile.runcall(function, *args)
    finally:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(30)


def _timed_load_module(original):
    def load_module(path):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            if os.path.basename(path) == os.environ.get("FOOOCUS_STARTUP_PROBE_PROFILE"):
                return _profiled(original, path)
            return original(path)
        finally:
            _report_line("load", time.perf_counter() - wall, time.thread_time() - cpu, path)

    load_module.startup_probe = True
    return load_module


def _timed_create_script_ui(original):
    def create_script_ui(self, script):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(self, script)
        finally:
            spent = UI_SECONDS.setdefault(script.filename, [0.0, 0.0])
            spent[0] += time.perf_counter() - wall
            spent[1] += time.thread_time() - cpu

    create_script_ui.startup_probe = True
    return create_script_ui


def _timed_callback(callback, path):
    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return callback(*args, **kwargs)
        finally:
            _report_line("app_started", time.perf_counter() - wall, time.thread_time() - cpu, path)

    return timed


def _wrap_app_started_callbacks():
    """Every `app_started` callback registered by then (all scripts are loaded before the UI)."""
    callbacks = script_callbacks.callback_map.get("callbacks_app_started", [])
    for index, entry in enumerate(callbacks):
        if entry.callback is _report_ui:
            continue
        timed = _timed_callback(entry.callback, entry.script)
        if hasattr(entry, "_replace"):  # A1111 1.7: a namedtuple
            callbacks[index] = entry._replace(callback=timed)
        else:  # A1111 1.8+, Forge: a dataclass
            entry.callback = timed


def _report_ui(demo, app):
    for path, (wall, cpu) in sorted(UI_SECONDS.items()):
        _report_line("ui", wall, cpu, path)


if not getattr(script_loading.load_module, "startup_probe", False):
    script_loading.load_module = _timed_load_module(script_loading.load_module)
if not getattr(scripts.ScriptRunner.create_script_ui, "startup_probe", False):
    scripts.ScriptRunner.create_script_ui = _timed_create_script_ui(scripts.ScriptRunner.create_script_ui)
script_callbacks.on_before_ui(_wrap_app_started_callbacks)
script_callbacks.on_app_started(_report_ui)
