"""Import of Fooocus's style files against a local HTTP server (127.0.0.1 only), and A1111 CSV import."""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_server import serving

from lib_fooocus.downloads import FOOOCUS_COMMIT, download_verified
from lib_fooocus.styles.assembly import plan_prompt
from lib_fooocus.styles.importer import (
    DEFAULT_BASE_URL,
    FOOOCUS_STYLE_SHA256,
    import_a1111_csv,
    import_fooocus_styles,
    preview_hashes,
    resolve_base_url,
)
from lib_fooocus.styles.library import StyleLibrary, find_fooocus_styles_dir

GOOD = json.dumps([{"name": "served-style", "prompt": "served {prompt}", "negative_prompt": "served neg"}]).encode()
OTHER = json.dumps([{"name": "other", "prompt": "{prompt}"}]).encode()
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
SERVED = {"a.json": GOOD, "b.json": OTHER, "samples/p.jpg": JPEG}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """/good/<file>: full files; /truncated/<file>: half the bytes under a full Content-Length;
    /unsized/<file>: half the bytes, no length; anything else: 404."""

    def do_GET(self) -> None:
        _, mode, name = self.path.split("/", 2)
        data = SERVED.get(name)
        if data is None or mode not in ("good", "truncated", "unsized"):
            self.send_error(404)
            return
        self.send_response(200)
        if mode != "unsized":
            self.send_header("Content-Length", str(len(data)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data if mode == "good" else data[: len(data) // 2])
        self.wfile.flush()
        if mode != "good":
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(Handler) as url:
        yield url


def leftovers(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_good_file_is_downloaded_verified_and_loadable(server: str, tmp_path: Path) -> None:
    result = import_fooocus_styles(tmp_path, base_url=f"{server}/good", expected={"a.json": sha(GOOD)})
    assert result.ok
    assert result.downloaded == ["a.json"]
    assert (tmp_path / "a.json").read_bytes() == GOOD
    assert leftovers(tmp_path) == ["a.json"]
    plan = plan_prompt(StyleLibrary.load([tmp_path]), "x", "", ["Served Style"])
    assert (plan.positive_parts, plan.negative_parts) == (["served x"], ["served neg"])
    again = import_fooocus_styles(tmp_path, base_url=f"{server}/good/", expected={"a.json": sha(GOOD)})
    assert again.already_present == ["a.json"]
    assert again.downloaded == []


@pytest.mark.parametrize("mode", ["truncated", "unsized"])
def test_truncated_download_leaves_nothing_behind(server: str, tmp_path: Path, mode: str) -> None:
    result = import_fooocus_styles(tmp_path, base_url=f"{server}/{mode}", expected={"a.json": sha(GOOD)})
    assert not result.ok
    assert list(result.failures) == ["a.json"]
    assert "truncated" in result.failures["a.json"]
    assert leftovers(tmp_path) == []


def test_wrong_hash_is_refused_and_an_existing_file_is_kept(server: str, tmp_path: Path) -> None:
    (tmp_path / "b.json").write_bytes(b"[]")
    result = import_fooocus_styles(tmp_path, base_url=f"{server}/good", expected={"b.json": sha(GOOD), "a.json": "0" * 64})
    assert set(result.failures) == {"a.json", "b.json"}
    assert "does not match" in result.failures["b.json"]
    assert leftovers(tmp_path) == ["b.json"]
    assert (tmp_path / "b.json").read_bytes() == b"[]"


def test_missing_file_is_reported(server: str, tmp_path: Path) -> None:
    result = import_fooocus_styles(tmp_path, base_url=f"{server}/good", expected={"nope.json": sha(GOOD)})
    assert "HTTP 404" in result.failures["nope.json"]
    assert leftovers(tmp_path) == []


def test_previews_go_to_samples_and_are_verified(server: str, tmp_path: Path) -> None:
    result = import_fooocus_styles(
        tmp_path,
        base_url=f"{server}/good",
        expected={"a.json": sha(GOOD)},
        previews=True,
        expected_previews={"p.jpg": sha(JPEG), "q.jpg": sha(JPEG)},
    )
    assert sorted(result.downloaded) == ["a.json", "samples/p.jpg"]
    assert list(result.failures) == ["samples/q.jpg"]
    assert leftovers(tmp_path) == ["a.json", "samples/p.jpg"]


def test_size_limit(server: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="larger than"):
        download_verified(f"{server}/good/a.json", tmp_path / "a.json", sha(GOOD), limit=10)
    assert leftovers(tmp_path) == []


def test_unreachable_server_is_an_error_not_a_crash(tmp_path: Path) -> None:
    result = import_fooocus_styles(tmp_path, base_url="http://127.0.0.1:9/", expected={"a.json": sha(GOOD)}, timeout=2)
    assert "cannot connect" in result.failures["a.json"]


def test_defaults_point_at_the_pinned_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FOOOCUS_COMMIT in DEFAULT_BASE_URL
    assert len(FOOOCUS_STYLE_SHA256) == 6
    assert all(len(h) == 64 for h in FOOOCUS_STYLE_SHA256.values())
    table = preview_hashes()
    assert len(table) == 279
    assert "fooocus_v2.jpg" in table
    assert "random_style.jpg" in table
    monkeypatch.setenv("SD_WEBUI_FOOOCUS_STYLES_BASE_URL", "http://127.0.0.1:1/mirror")
    assert resolve_base_url() == "http://127.0.0.1:1/mirror/"
    assert resolve_base_url("http://x/y/") == "http://x/y/"


def test_find_fooocus_styles_dir(tmp_path: Path) -> None:
    styles = tmp_path / "Fooocus" / "sdxl_styles"
    styles.mkdir(parents=True)
    (styles / "sdxl_styles_fooocus.json").write_text("[]", encoding="utf-8")
    assert find_fooocus_styles_dir(tmp_path / "Fooocus") == styles
    assert find_fooocus_styles_dir(styles) == styles
    with pytest.raises(ValueError, match="not a Fooocus install"):
        find_fooocus_styles_dir(tmp_path / "elsewhere")


def test_a1111_csv_import_writes_an_equivalent_json(tmp_path: Path) -> None:
    csv_path = tmp_path / "styles.csv"
    csv_path.write_text(
        "name,prompt,negative_prompt\nmy-look,\"moody, dark\",\"bright\"\nTpl,\"art of {prompt}\",\n,skipped,\n",
        encoding="utf-8",
    )
    dest = tmp_path / "user"
    target, count, warnings = import_a1111_csv(csv_path, dest)
    assert target == dest / "a1111_styles.json"
    assert count == 2
    assert warnings == []
    assert leftovers(dest) == ["a1111_styles.json"]
    from_json = StyleLibrary.load([dest])
    from_csv = StyleLibrary.load([csv_path])
    assert from_json.names == from_csv.names == ["My Look", "Tpl"]
    for names in (["My Look"], ["Tpl"], ["Tpl", "My Look"]):
        assert plan_prompt(from_json, "a cat", "n", names) == plan_prompt(from_csv, "a cat", "n", names)
    assert plan_prompt(from_json, "a cat", "", ["My Look"]).positive_parts == ["a cat, moody, dark"]
    with pytest.raises(ValueError, match="does not exist"):
        import_a1111_csv(tmp_path / "missing.csv", dest)


def test_load_library_with_a_fooocus_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lib_fooocus.styles.library import load_library

    user = tmp_path / "user"
    monkeypatch.setenv("SD_WEBUI_FOOOCUS_STYLES_DIR", str(user))
    install = tmp_path / "Fooocus" / "sdxl_styles"
    install.mkdir(parents=True)
    (install / "sdxl_styles_fooocus.json").write_text(json.dumps([
        {"name": "Fooocus Enhance", "negative_prompt": "n"}, {"name": "Fooocus Sharp", "prompt": "s {prompt}"},
    ]), encoding="utf-8")
    (user / "mine.json").parent.mkdir()
    (user / "mine.json").write_text(json.dumps([{"name": "mine", "prompt": "{prompt}"}]), encoding="utf-8")
    library = load_library(tmp_path / "Fooocus")
    assert library.names[-3:] == ["Mine", "Fooocus Enhance", "Fooocus Sharp"]
    assert len(library) > 120
    assert library.default_selection() == ["Fooocus V2", "Fooocus Enhance", "Fooocus Sharp"]
    wrong = load_library(tmp_path / "nowhere")
    assert wrong.names[-1] == "Mine"
    assert "Fooocus styles folder setting" in wrong.warnings[-1]
