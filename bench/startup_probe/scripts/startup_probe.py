"""Start-up probe: a tiny WebUI extension used only by `bench/startup.py --webui`.

The host's start-up profiler (`modules/timer.py`, printed with `--log-startup`) times each script
file's import ("load scripts/<file>") and each extension's `app_started` callback, but builds the UI
of all scripts as one "create ui" item. This probe times each Script's own UI build too: it wraps
`ScriptRunner.create_script_ui` (A1111 1.6+ and Forge) when the host loads it (after the other
extensions' scripts: it is linked under a name sorting last), and when the app has started prints one
line per script file:

    startup-probe: <file> load <s> ui <s>
    startup-probe: app_started <s> <path of the file that registered the callback>

and the host's whole "create ui" item. It changes nothing else. Not part
of the extension: it is linked into a host folder by the bench.
"""

import collections
import os
import time

from modules import script_callbacks, scripts, timer

UI_SECONDS = collections.Counter()  # script file name -> seconds in its ui() over both tabs


def _timed_create_script_ui(original):
    def create_script_ui(self, script):
        began = time.perf_counter()
        try:
            return original(self, script)
        finally:
            UI_SECONDS[os.path.basename(script.filename)] += time.perf_counter() - began

    create_script_ui.startup_probe = True
    return create_script_ui


if not getattr(scripts.ScriptRunner.create_script_ui, "startup_probe", False):
    scripts.ScriptRunner.create_script_ui = _timed_create_script_ui(scripts.ScriptRunner.create_script_ui)


def _record(records, *names):
    return sum(records.get(name, 0.0) for name in names)


def _app_started_callbacks():
    """(file that registered it, seconds the host recorded) per `app_started` callback run before
    this probe's. The host records each under the registering file's base name (which may be a
    module of the extension rather than its script file)."""
    records = timer.startup_timer.records
    found = []
    for callback in script_callbacks.callback_map.get("callbacks_app_started", []):
        if callback.callback is _report:
            break
        name = os.path.basename(callback.script)
        found.append((os.path.realpath(callback.script), _record(records, f"app_started_callback/{name}")))
    return found


def _report(demo, app):
    records = timer.startup_timer.records
    files = sorted({name.rsplit("/", 1)[-1] for name in records if name.startswith("load scripts/")} | set(UI_SECONDS))
    for name in files:
        load = _record(records, f"load scripts/{name}")
        print(f"startup-probe: {name} load {load:.3f} ui {UI_SECONDS.get(name, 0.0):.3f}", flush=True)
    for path, seconds in _app_started_callbacks():
        print(f"startup-probe: app_started {seconds:.3f} {path}", flush=True)
    print(f"startup-probe: create ui {records.get('create ui', 0.0):.3f} (all scripts and the host's own UI)", flush=True)


script_callbacks.on_app_started(_report)
