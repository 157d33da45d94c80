"""Start-up: loading the Script, its callbacks and building its UI (fake host, fresh interpreter, as
`bench/startup.py --json` runs it) import neither transformers, huggingface_hub, safetensors nor
tokenizers, nor our modules needed only by a generation, an expansion or a click; they read each
style file once and nothing in the expansion folder (its status looks at files, never hashes them).
Timing is bench/startup.py's job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lib_fooocus.expansion.files import SAFETENSORS_NAME, SMALL_FILES

REPO = Path(__file__).resolve().parents[1]
STYLES = REPO / "styles"

# Needed only later: the first generation (runtime), the first expansion (engine, decoder), the
# first style import (importer), the sampling hooks (hosts, match, refiner).
NOT_AT_IMPORT = ("lib_fooocus.webui.runtime", "lib_fooocus.webui.generation")
NOT_AT_START = ("lib_fooocus.expansion.engine", "lib_fooocus.expansion.decoder", "lib_fooocus.styles.importer",
                "lib_fooocus.hosts", "lib_fooocus.match", "lib_fooocus.refiner", *NOT_AT_IMPORT)


@pytest.fixture(scope="module", params=["a1111-1.6", "forge-main"])
def start_up(request, tmp_path_factory):
    """One start-up with a complete (fake) expansion folder in the host's models folder."""
    models = tmp_path_factory.mktemp("models")
    expansion = models / "prompt_expansion" / "fooocus_expansion"
    expansion.mkdir(parents=True)
    for name in [*SMALL_FILES, SAFETENSORS_NAME]:
        (expansion / name).write_text("not the real file: reading it would show up\n")
    done = subprocess.run([sys.executable, str(REPO / "bench" / "startup.py"), "--json", "--host", request.param,
                           "--models-path", str(models)],
                          capture_output=True, text=True, timeout=600, check=False, cwd=REPO)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    result["expansion_dir"] = str(expansion)
    return result


def test_start_up_imports_no_transformers_or_huggingface_hub(start_up):
    assert set(start_up["timings"]) == {"import", "callbacks", "ui", "app_started"}  # the UI was really built
    assert start_up["components"] > 40
    assert start_up["heavy"] == []


def test_start_up_imports_none_of_our_modules_needed_later(start_up):
    assert "lib_fooocus.webui.hooks" in start_up["modules_at_import"]  # the list is real
    assert "lib_fooocus.expansion.service" in start_up["modules"]
    early = [name for name in start_up["modules_at_import"] if name.startswith(NOT_AT_IMPORT)]
    assert early == []
    early = [name for name in start_up["modules"] if name.startswith(NOT_AT_START)]
    assert early == []


def test_start_up_reads_each_style_file_once(start_up):
    style_files = sorted(str(path) for path in STYLES.glob("*.json"))
    opened = [path for paths in start_up["opened"].values() for path in paths]
    assert sorted(path for path in opened if path.startswith(str(STYLES))) == style_files
    # Loading the script reads no file; the second tab's accordion reuses what the first one read.
    assert start_up["opened"].get("import", []) == []
    assert start_up["opened"].get("ui img2img", []) == []


def test_start_up_reads_nothing_in_the_expansion_folder(start_up):
    # The status saw the files (by their names and sizes) and said so, without opening any of them.
    assert "not loaded yet" in start_up["expansion_status"]
    opened = [path for paths in start_up["opened"].values() for path in paths]
    assert [path for path in opened if path.startswith(start_up["expansion_dir"])] == []


@pytest.mark.parametrize("host", ["a1111-1.6", "forge-main"])
def test_callbacks_are_registered_from_a_stack_without_the_script_loading_frames(host, monkeypatch):
    """The hosts' `add_callback` walks the registering thread's stack with `inspect.stack()`, which
    costs a scan of all modules per frame no module owns (the script file, importlib's frames):
    ~25 ms per callback on a real A1111. The four registrations run where the script's loading
    frames are not on the stack, in the same order as before, and an error in them still reaches
    the loader."""
    import importlib.util
    import inspect

    import webui_fakes

    fakes = webui_fakes.install(host, monkeypatch.setitem)
    registered = []

    def recording(category):
        original = getattr(fakes.script_callbacks, f"on_{category}")

        def register(callback, **kwargs):
            original(callback, **kwargs)  # A1111 1.6 refuses `name=`: recorded once it is accepted
            registered.append((category, {frame.filename for frame in inspect.stack()}))

        return register

    for category in ("ui_settings", "app_started", "infotext_pasted", "before_ui"):
        monkeypatch.setattr(fakes.script_callbacks, f"on_{category}", recording(category))
    spec = importlib.util.spec_from_file_location("fooocus_script_registering", REPO / "scripts" / "fooocus.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))

    assert [category for category, _ in registered] == ["ui_settings", "app_started", "infotext_pasted", "before_ui"]
    for _category, stack in registered:
        assert str(REPO / "scripts" / "fooocus.py") not in stack
        assert not any(name.startswith("<frozen importlib") for name in stack)
        # Only the thread's own frames, ours (attributed to the extension's file) and the recorder here.
        assert {Path(name).name for name in stack} == {"threading.py", "hooks.py", Path(__file__).name}

    def failing(callback, **kwargs):
        raise RuntimeError("the host refused the callback")

    monkeypatch.setattr(fakes.script_callbacks, "on_ui_settings", failing)
    with pytest.raises(RuntimeError, match="refused"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
