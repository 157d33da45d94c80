"""The accordion's one-click style imports: result lines, progress, the picker's new choices, one
import at a time without holding a lock across downloads, and a clear line without a network. The
downloads come from a server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import serving

from lib_fooocus.styles.library import StyleLibrary
from lib_fooocus.webui.style_import import BUSY_LINE, StyleImports, host_style_files
from lib_fooocus.webui.ui_tools import import_outputs

STYLE_A = json.dumps([{"name": "served-style", "prompt": "served {prompt}", "negative_prompt": "n"}]).encode()
STYLE_B = json.dumps([{"name": "Other Served", "prompt": "{prompt}, other"}]).encode()
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 2 + b"\xff\xd9"
SERVED = {"a.json": STYLE_A, "b.json": STYLE_B, "samples/served_style.jpg": JPEG}
STYLE_FILES = {"a.json": hashlib.sha256(STYLE_A).hexdigest(), "b.json": hashlib.sha256(STYLE_B).hexdigest()}
PREVIEWS = {"served_style.jpg": hashlib.sha256(JPEG).hexdigest(), "missing.jpg": "0" * 64}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        data = SERVED.get(self.path.split("/", 2)[-1])
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(Handler) as url:
        yield f"{url}/files"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/files"  # nothing listens there any more: connection refused


class Library:
    """The context's part: the current library, and a reload that reads the folders again."""

    def __init__(self, *folders: Path):
        self.folders = folders
        self.current = StyleLibrary.load(folders)
        self.reloads = 0

    def get(self) -> StyleLibrary:
        return self.current

    def reload(self) -> StyleLibrary:
        self.reloads += 1
        self.current = StyleLibrary.load(self.folders)
        return self.current


@pytest.fixture
def bundled(tmp_path: Path) -> Path:
    folder = tmp_path / "bundled"
    folder.mkdir()
    (folder / "ours.json").write_text(json.dumps([{"name": "Ours", "prompt": "{prompt}, ours"},
                                                  {"name": "Shared Name", "prompt": "{prompt}, ours too"}]))
    return folder


def importer(tmp_path: Path, library: Library, base_url: str) -> StyleImports:
    return StyleImports(library.get, library.reload, user_dir=lambda: tmp_path / "user", base_url=base_url,
                        style_files=STYLE_FILES, preview_files=PREVIEWS, timeout=5)


def test_fooocus_import_line_progress_and_new_choices(server: str, tmp_path: Path, bundled: Path) -> None:
    library = Library(bundled, tmp_path / "user")
    imports = importer(tmp_path, library, server)
    progress = []
    line = imports.import_fooocus(lambda done, total, text: progress.append((done, total, text)))
    assert line.startswith("Fooocus's styles imported: 2 of 2 style files (2 downloaded, 0 already there), "
                           "1 of 2 previews (1 downloaded, 0 already there); the library has 4 styles (+2).")
    assert "Skipped 1 file(s) that failed: samples/missing.jpg:" in line and "HTTP 404" in line
    done = [step[0] for step in progress if step[0]]
    assert done == sorted(done) and set(done) == {1, 2, 3, 4} and {step[1] for step in progress} == {4}
    assert progress[0][2] == "Downloading Fooocus's style files…"
    assert library.reloads == 1
    assert library.current.preview_path("Served Style") is not None
    selected_line, choices, count, _notes, cards = import_outputs(line, ["Ours", "Gone"], library.current, dict, True)
    assert selected_line == line
    assert choices == {"choices": ["Fooocus V2", "Random Style", "Ours", "Shared Name", "Served Style",
                                   "Other Served"], "value": ["Ours"]}
    assert "1 style selected" in count
    assert "Other Served" in cards and "Served Style" not in cards  # it has an image now
    again = imports.import_fooocus()
    assert "(0 downloaded, 2 already there)" in again and "(+0)" in again


def test_no_network_gives_a_clear_line_and_changes_nothing(tmp_path: Path, bundled: Path) -> None:
    library = Library(bundled, tmp_path / "user")
    before = library.current
    line = importer(tmp_path, library, closed_port_url()).import_fooocus()
    assert line.startswith("Fooocus's styles not imported: no style file could be downloaded from http://127.0.0.1:")
    assert "(2 files: cannot connect (" in line and "Check the network connection" in line
    assert library.reloads == 0 and library.current is before
    assert not list((tmp_path / "user").glob("*.json"))


def test_one_import_at_a_time_and_no_lock_held_while_downloading(server: str, tmp_path: Path, bundled: Path) -> None:
    library = Library(bundled, tmp_path / "user")
    imports = importer(tmp_path, library, server)
    seen = []

    def report(done: int, total: int, text: str) -> None:
        if not seen:  # in the middle of the downloads
            seen.append((imports._flag_lock.locked(), imports.import_csv(str(tmp_path / "x.csv"))))

    imports.import_fooocus(report)
    assert seen == [(False, BUSY_LINE)]
    assert imports.import_fooocus().startswith("Fooocus's styles imported")  # free again afterwards


def test_csv_import_counts_skipped_rows_and_replaced_names(tmp_path: Path, bundled: Path) -> None:
    library = Library(bundled, tmp_path / "user")
    imports = importer(tmp_path, library, closed_port_url())
    csv_file = tmp_path / "styles.csv"
    csv_file.write_text("name,prompt,negative_prompt\n"
                        "Pencil,pencil drawing,\n"
                        ",orphan text,\n"
                        "# comment,,\n"
                        "shared-name,{prompt} from the csv,ugly\n"
                        "pencil,pencil sketch,\n", encoding="utf-8")
    line = imports.import_csv(str(csv_file))
    assert line == ("styles.csv: 2 style(s) imported into a1111_styles.json, 2 row(s) skipped (row 3: no name; "
                    "row 6: 'pencil' repeats an earlier name (the later row is kept)), 1 replace a style of the "
                    "same name (Shared Name). The library has 3 styles (+1).")
    assert library.current.get("Pencil").prompt == "{prompt}, pencil sketch"  # A1111's rule: appended
    assert library.current.get("Shared Name").negative_prompt == "ugly"


def test_csv_import_defaults_to_the_host_s_files_and_refuses_other_files(tmp_path: Path, bundled: Path) -> None:
    library = Library(bundled, tmp_path / "user")
    imports = importer(tmp_path, library, closed_port_url())
    host_csv = tmp_path / "webui" / "styles.csv"
    host_csv.parent.mkdir()
    host_csv.write_text("name,prompt,negative_prompt\nHost Look,{prompt} in host look,\n", encoding="utf-8")
    missing = tmp_path / "webui" / "styles_integrated.csv"
    assert imports.import_csv("", [missing]).startswith("The WebUI has no styles.csv to import yet (looked at: ")
    assert imports.import_csv("  ", [host_csv, missing]).startswith("styles.csv: 1 style(s) imported")
    assert "Host Look" in library.current.names
    secret = tmp_path / "secret.txt"
    secret.write_text("name\nx\n")
    refused = imports.import_csv(str(secret))
    assert refused.startswith("Not imported: ") and "is not a .csv file" in refused
    assert "Not imported" in imports.import_csv(str(tmp_path / "nope.csv"))
    broken = tmp_path / "broken.csv"
    broken.write_text("title,text\nx,y\n", encoding="utf-8")
    assert "not imported (" in imports.import_csv(str(broken)) and "'name' column" in imports.import_csv(str(broken))


def test_host_style_files_on_each_host_shape(monkeypatch) -> None:
    import sys
    import types

    modules = types.ModuleType("modules")
    shared = types.ModuleType("modules.shared")
    modules.shared = shared
    monkeypatch.setitem(sys.modules, "modules", modules)
    monkeypatch.setitem(sys.modules, "modules.shared", shared)
    shared.styles_filename = "/webui/styles.csv"  # A1111 1.7
    assert host_style_files() == ["/webui/styles.csv"]
    shared.styles_filename = ["/webui/styles.csv", "/webui/more/*.csv"]  # A1111 1.8+ / Forge, unresolved
    assert host_style_files() == ["/webui/styles.csv"]
    shared.prompt_styles = types.SimpleNamespace(all_styles_files=[Path("/webui/styles.csv"), Path("/webui/more/a.csv")])
    assert host_style_files() == ["/webui/styles.csv", "/webui/more/a.csv"]
