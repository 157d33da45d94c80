"""REST routes (FastAPI TestClient) and the `python -m lib_fooocus styles` CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lib_fooocus.__main__ import main
from lib_fooocus.styles.library import REPO_ROOT, StyleLibrary

JPEG = b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9"


@pytest.fixture
def style_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "styles"
    folder.mkdir()
    (folder / "mine.json").write_text(json.dumps([
        {"name": "my-noir", "prompt": "noir photo of {prompt}", "negative_prompt": "color"},
        {"name": "Quality", "prompt": "", "negative_prompt": "lowres"},
        {"name": "<b>Tricky & \"quoted\"</b>", "prompt": "{prompt}, tricky", "negative_prompt": ""},
    ]), encoding="utf-8")
    (folder / "samples").mkdir()
    (folder / "samples" / "my_noir.jpg").write_bytes(JPEG)
    return folder


@pytest.fixture
def client(style_dir: Path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_styles import register_style_routes

    state = {"library": StyleLibrary.load([style_dir])}
    app = FastAPI()
    register_style_routes(app, lambda: state["library"])
    return TestClient(app)


def test_get_styles_lists_every_style_with_preview_and_source(client, style_dir: Path) -> None:
    response = client.get("/fooocus/v1/styles")
    assert response.status_code == 200
    data = response.json()
    assert [s["name"] for s in data["styles"]] == ["My Noir", "Quality", "<b>tricky & \"quoted\"</b>"]
    noir = data["styles"][0]
    assert noir == {
        "name": "My Noir",
        "prompt": "noir photo of {prompt}",
        "negative_prompt": "color",
        "source": "styles/mine.json",  # relative to its style folder: no server paths
        "preview_url": "/fooocus/v1/styles/preview/my_noir.jpg",
    }
    assert data["styles"][1]["preview_url"] is None
    assert [s["name"] for s in data["special"]] == ["Fooocus V2", "Random Style"]
    assert client.get("/fooocus/v1/styles", params={"search": "noir"}).json()["styles"][0]["name"] == "My Noir"
    assert client.get("/fooocus/v1/styles", params={"search": "zzz"}).json()["styles"] == []


def test_get_styles_reveals_no_server_paths(tmp_path: Path, style_dir: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_styles import register_style_routes

    (style_dir / "nested").mkdir()
    (style_dir / "nested" / "more.json").write_text(json.dumps([{"name": "Deep", "prompt": "{prompt}"}]),
                                                   encoding="utf-8")
    (style_dir / "broken.json").write_text("{not json", encoding="utf-8")
    csv_file = tmp_path / "elsewhere" / "styles.csv"
    csv_file.parent.mkdir()
    csv_file.write_text("name,prompt,negative_prompt\nFrom Csv,{prompt} csv,\n", encoding="utf-8")
    library = StyleLibrary.load([style_dir, csv_file, tmp_path / "missing"])
    library._warn(f"Fooocus styles folder setting: {tmp_path / 'nowhere'} is not a folder")
    app = FastAPI()
    register_style_routes(app, lambda: library)
    data = TestClient(app).get("/fooocus/v1/styles").json()
    sources = {style["name"]: style["source"] for style in data["styles"]}
    assert sources["My Noir"] == "styles/mine.json"
    assert sources["Deep"] == "styles/nested/more.json" or "Deep" not in sources
    assert sources["From Csv"] == "styles.csv"
    assert any("broken.json" in warning for warning in data["warnings"])
    assert str(tmp_path) not in json.dumps(data)
    assert "/tmp" not in json.dumps(data) and str(Path.home()) not in json.dumps(data)


def test_preview_route_serves_only_known_previews(client) -> None:
    response = client.get("/fooocus/v1/styles/preview/my_noir.jpg")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content == JPEG
    assert client.get("/fooocus/v1/styles/preview/quality.jpg").status_code == 404
    assert client.get("/fooocus/v1/styles/preview/..%2Fmine.jpg").status_code == 404


def test_ui_preview_routes_list_and_serve_previews_without_paths(style_dir: Path) -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_styles import register_ui_preview_routes

    app = FastAPI()
    register_ui_preview_routes(app, lambda: StyleLibrary.load([style_dir]), dependencies=[])
    client = TestClient(app)
    listing = client.get("/fooocus/ui/v1/styles/previews")
    assert listing.json() == {"previews": {"My Noir": "/fooocus/ui/v1/styles/preview/my_noir.jpg"}}
    assert str(style_dir) not in listing.text
    image = client.get("/fooocus/ui/v1/styles/preview/my_noir.jpg")
    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/jpeg", JPEG)
    assert client.get("/fooocus/ui/v1/styles/preview/quality.jpg").status_code == 404
    assert client.get("/fooocus/ui/v1/styles/preview/..%2Fmine.jpg").status_code == 404


class StalledLibrary:
    """A library whose disk access (the first load, the preview lookup) stalls until released."""

    def __init__(self, library: StyleLibrary):
        self.library = library
        self.entered = threading.Event()
        self.release = threading.Event()

    def stall(self) -> None:
        self.entered.set()
        assert self.release.wait(30), "never released"

    def get(self) -> StyleLibrary:
        self.stall()
        return self.library


DISK_ROUTES = [
    ("get", "/fooocus/v1/styles", None),
    ("post", "/fooocus/v1/styles/apply", {"prompt": "a cat", "styles": ["My Noir"]}),
    ("get", "/fooocus/v1/styles/preview/my_noir.jpg", None),
    ("get", "/fooocus/ui/v1/styles/previews", None),
    ("get", "/fooocus/ui/v1/styles/preview/my_noir.jpg", None),
]


@pytest.mark.parametrize(("method", "path", "body"), DISK_ROUTES, ids=[p for _m, p, _b in DISK_ROUTES])
def test_style_routes_read_the_disk_off_the_event_loop(style_dir: Path, method: str, path: str, body) -> None:
    """While one request waits on the disk (a stalled library load), the server's event loop keeps
    answering other requests. On the loop, the stall would hold every request up until released."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_styles import register_style_routes, register_ui_preview_routes

    stalled = StalledLibrary(StyleLibrary.load([style_dir]))
    app = FastAPI()
    register_style_routes(app, stalled.get)
    register_ui_preview_routes(app, stalled.get, dependencies=[])

    async def ping():
        return {"pong": True}

    app.add_api_route("/ping", ping, methods=["GET"])
    answers: dict[str, int] = {}
    with TestClient(app) as client:  # one event loop for every request of this block
        slow = threading.Thread(target=lambda: answers.update(slow=client.request(method, path, json=body).status_code))
        slow.start()
        try:
            assert stalled.entered.wait(30), "the route never reached the library"
            fast = threading.Thread(target=lambda: answers.update(ping=client.get("/ping").status_code))
            fast.start()
            fast.join(10)
            answered_during_stall = answers.get("ping")
        finally:
            stalled.release.set()
            slow.join(30)
        fast.join(30)
    assert answered_during_stall == 200, "the event loop was blocked by the route's disk access"
    assert answers["slow"] == 200


def test_apply_returns_the_assembled_parts(client) -> None:
    body = {"prompt": "a cat", "negative_prompt": "dogs", "styles": ["My Noir", "Quality", "Fooocus V2"], "seed": 3}
    response = client.post("/fooocus/v1/styles/apply", json=body)
    assert response.status_code == 200
    assert response.json() == {
        "positive_parts": ["noir photo of a cat"],
        "negative_parts": ["color", "lowres", "dogs"],
        "styles": ["My Noir", "Quality"],
        "expansion_requested": True,
        "prompt": "noir photo of a cat",
        "negative_prompt": "color BREAK lowres BREAK dogs",
    }


def test_apply_with_random_style_is_deterministic(client) -> None:
    body = {"prompt": "a cat", "styles": ["Random Style"], "seed": 11}
    first = client.post("/fooocus/v1/styles/apply", json=body).json()
    assert first == client.post("/fooocus/v1/styles/apply", json=body).json()
    no_seed = client.post("/fooocus/v1/styles/apply", json={"prompt": "a", "styles": ["Random Style"]})
    assert no_seed.status_code == 422
    assert "seed" in no_seed.json()["detail"]


def test_unknown_styles_are_a_422_naming_them(client) -> None:
    response = client.post("/fooocus/v1/styles/apply", json={"prompt": "a", "styles": ["Nope", "My Noir", "Gone"]})
    assert response.status_code == 422
    assert response.json()["unknown_styles"] == ["Nope", "Gone"]
    assert "'Nope'" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"prompt": 5}).encode(), "prompt: expected a string"),
        (json.dumps({"styles": "My Noir"}).encode(), "styles: expected a list"),
        (json.dumps({"seed": "x"}).encode(), "seed: expected an integer"),
        (json.dumps({"seed": True}).encode(), "seed: expected an integer"),
        (json.dumps({"prompt": "a", "colour": 1}).encode(), "unknown field(s) 'colour'"),
    ],
)
def test_bad_bodies_are_422_with_a_reason(client, body: bytes, fragment: str) -> None:
    response = client.post("/fooocus/v1/styles/apply", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


# -- CLI ------------------------------------------------------------------------------------------


def test_cli_list_and_search(style_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["styles", "list", "--folder", str(style_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["My Noir", "Quality", "<b>tricky & \"quoted\"</b>"]
    assert main(["styles", "list", "--folder", str(style_dir), "--search", "LOWRES", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed] == ["Quality"]


def test_cli_apply(style_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["styles", "apply", "a cat", "--folder", str(style_dir), "--style", "my-noir", "--style", "Quality",
                 "--negative", "dogs", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["prompt"] == "noir photo of a cat"
    assert result["negative_parts"] == ["color", "lowres", "dogs"]
    assert main(["styles", "apply", "a cat", "--folder", str(style_dir), "--style", "Random Style", "--seed", "4"]) == 0
    assert "prompt:" in capsys.readouterr().out


def test_cli_unknown_style_is_an_error(style_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["styles", "apply", "a", "--folder", str(style_dir), "--style", "Nope", "--style", "Gone"]) == 2
    err = capsys.readouterr().err
    assert "'Nope'" in err
    assert "'Gone'" in err


def test_cli_without_action(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["styles"]) == 2
    assert "choose an action" in capsys.readouterr().err


def test_cli_import_fooocus_reports_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["styles", "import-fooocus", "--dest", str(tmp_path), "--base-url", "http://127.0.0.1:9/"])
    assert code == 1
    captured = capsys.readouterr()
    assert "6 failed" in captured.out
    assert "sdxl_styles_fooocus.json" in captured.err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_cli_import_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "styles.csv").write_text("name,prompt,negative_prompt\nLook,\"moody\",\"bright\"\n", encoding="utf-8")
    assert main(["styles", "import-csv", str(tmp_path / "styles.csv"), "--dest", str(tmp_path / "out")]) == 0
    assert "1 styles written" in capsys.readouterr().out
    assert StyleLibrary.load([tmp_path / "out"]).names == ["Look"]


def test_cli_runs_as_a_module_with_the_bundled_styles() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lib_fooocus", "styles", "list", "--search", "cinematic", "--folder",
         str(REPO_ROOT / "styles")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Crisp Cinematic Still" in result.stdout.splitlines()
