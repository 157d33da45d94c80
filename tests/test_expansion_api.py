"""Expansion service (lazy, thread-safe), REST route and CLI, on the tiny test model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from expansion_fixtures import (  # noqa: F401  (_one_torch_thread is an autouse fixture)
    FakeHub,
    _one_torch_thread,
    small_file_hashes,
    write_model_dir,
)

from lib_fooocus.__main__ import main as cli_main
from lib_fooocus.expansion import files as expansion_files
from lib_fooocus.expansion.engine import FooocusExpansion
from lib_fooocus.expansion.files import LICENSE_NOTICE, ExpansionSource, MissingExpansionFilesError
from lib_fooocus.expansion.service import ExpansionService, ExpansionSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
CASES = [("a photo of the cat", 1), ("a house", 42), ("the river with kaka", 9), ("dog and tree", 2**40)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("api") / "fooocus_expansion", weights="safetensors")


@pytest.fixture(scope="module")
def expected(model_dir):
    engine = FooocusExpansion(model_dir)
    return {case: engine.expand(*case) for case in CASES}


def service_for(folder: Path, **settings) -> ExpansionService:
    """A service for a tiny-model folder, whose own small files are the "pinned" ones."""
    hashes = small_file_hashes(folder) if (folder / "config.json").is_file() else None
    source = ExpansionSource(hashes=hashes)
    return ExpansionService(
        ExpansionSettings(model_dir=str(folder), allow_download=False, source=source, **settings)
    )


@pytest.fixture
def _tiny_files_pinned(monkeypatch, model_dir):
    """For the CLI, which uses the pinned hashes: pin the tiny model's files."""
    monkeypatch.setattr(expansion_files, "SMALL_FILES", dict(small_file_hashes(model_dir)))


# ---- service --------------------------------------------------------------------------------------


def test_service_loads_lazily_and_unloads(model_dir, expected):
    service = service_for(model_dir)
    assert not service.loaded
    assert service.expand("", 3) == ""
    assert not service.loaded
    assert service.expand(*CASES[0]) == expected[CASES[0]]
    assert service.loaded
    service.unload()
    assert not service.loaded
    assert service.expand(*CASES[1]) == expected[CASES[1]]


def test_service_unloads_after_generation_only_when_asked(model_dir, expected):
    keeping = service_for(model_dir)
    assert keeping.expand(*CASES[2]) == expected[CASES[2]]
    keeping.finish_generation()
    assert keeping.loaded
    service = service_for(model_dir, unload_after_generation=True)
    assert service.expand(*CASES[2]) == expected[CASES[2]]
    assert service.expand(*CASES[3]) == expected[CASES[3]]  # a batch keeps it loaded
    assert service.loaded
    service.finish_generation()
    assert not service.loaded


def test_service_is_thread_safe(model_dir, expected):
    service = service_for(model_dir)
    results: dict[tuple[str, int], list[str]] = {case: [] for case in CASES}
    errors: list[BaseException] = []

    def worker(case):
        try:
            results[case].append(service.expand(*case))
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(case,)) for case in CASES * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    for case in CASES:
        assert results[case] == [expected[case]] * 2


def test_service_missing_model_raises_the_message(tmp_path):
    service = service_for(tmp_path / "nothing")
    with pytest.raises(MissingExpansionFilesError, match="positive.txt"):
        service.expand("a cat", 1)
    assert not service.loaded


@pytest.mark.parametrize(
    ("settings", "device_type", "dtype"),
    [
        ({"device": "cuda:0"}, "cuda", torch.float16),
        ({"device": "cuda:0", "fp16_on_gpu": False}, "cuda", torch.float32),
        ({"device": "cuda:0", "use_cpu": True}, "cpu", torch.float32),
        ({"device": "mps"}, "cpu", torch.float32),
        ({}, "cpu", torch.float32),
    ],
)
def test_service_device_and_dtype_choice(settings, device_type, dtype):
    calls = []

    def factory(model_dir, device, dtype):
        calls.append((device, dtype))
        raise RuntimeError("stop here")

    service = ExpansionService(ExpansionSettings(model_dir="unused", **settings), engine_factory=factory)
    device, chosen = service.device_and_dtype()
    assert device.type == device_type
    assert chosen == dtype


# ---- REST --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(model_dir):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_expansion import register_expand_route

    app = FastAPI()
    services = {"current": service_for(model_dir)}
    register_expand_route(app, lambda: services["current"])
    test_client = TestClient(app)
    test_client.services = services
    return test_client


def test_rest_expands(client, expected):
    assert not client.services["current"].loaded
    for prompt, seed in CASES[:2]:
        response = client.post("/fooocus/v1/expand", json={"prompt": prompt, "seed": seed})
        assert response.status_code == 200
        assert response.json() == {"expansion": expected[(prompt, seed)]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "JSON object"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"seed": 1}).encode(), "'prompt' must be a string (it is missing)"),
        (json.dumps({"prompt": "a", "seed": "12"}).encode(), "'seed' must be an integer"),
        (json.dumps({"prompt": "a", "seed": True}).encode(), "'seed' must be an integer"),
        (json.dumps({"prompt": 5, "seed": 1}).encode(), "'prompt' must be a string"),
        (json.dumps({"prompt": "a", "seed": 1, "steps": 3}).encode(), "unknown field(s) steps"),
        (json.dumps({"prompt": "a", "seed": 2**70}).encode(), "'seed' must be between"),
    ],
)
def test_rest_rejects_bad_bodies_with_422(client, body, fragment):
    response = client.post("/fooocus/v1/expand", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert fragment in response.json()["detail"]


def test_rest_refuses_prompts_beyond_the_model_window(client, expected):
    from lib_fooocus.text import expansion_source
    from lib_fooocus.webui.rest_expansion import MAX_PROMPT_BYTES

    service = client.services["current"]
    calls = []
    real_expand = service.expand
    service.expand = lambda prompt, seed, **kwargs: calls.append(len(prompt)) or real_expand(prompt, seed, **kwargs)
    try:
        for prompt in ("a" * (MAX_PROMPT_BYTES + 1), "é" * (MAX_PROMPT_BYTES // 2 + 1)):  # bytes, not characters
            response = client.post("/fooocus/v1/expand", json={"prompt": prompt, "seed": 1})
            assert response.status_code == 422
            assert "1,024 tokens" in response.json()["detail"] and str(MAX_PROMPT_BYTES) in response.json()["detail"]
        assert calls == []  # refused before the model is loaded (or downloaded)
        at_limit_prompt = "a house " * (MAX_PROMPT_BYTES // 8)
        at_limit = client.post("/fooocus/v1/expand", json={"prompt": at_limit_prompt, "seed": 4})
        assert at_limit.status_code == 200 and calls == [len(expansion_source(at_limit_prompt))]
    finally:
        del service.expand


def test_rest_accepts_integral_float_seed(client, expected):
    response = client.post("/fooocus/v1/expand", json={"prompt": "a house", "seed": 42.0})
    assert response.json() == {"expansion": expected[("a house", 42)]}


def test_rest_missing_model_is_503_with_the_message(client, tmp_path, model_dir):
    client.services["current"] = service_for(tmp_path / "absent")
    try:
        response = client.post("/fooocus/v1/expand", json={"prompt": "a cat", "seed": 1})
    finally:
        client.services["current"] = service_for(model_dir)
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "tokenizer.json" in detail
    assert str(tmp_path / "absent") in detail
    assert LICENSE_NOTICE in detail


# ---- CLI ---------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("_tiny_files_pinned")
def test_cli_prints_the_expansion(model_dir, expected, capsys):
    code = cli_main(
        ["expand", "a house", "--seed", "42", "--model-dir", str(model_dir), "--no-download", "--quiet"]
    )
    assert code == 0
    assert capsys.readouterr().out == expected[("a house", 42)] + "\n"


def test_cli_missing_files_exit_1_with_the_message(tmp_path, capsys):
    code = cli_main(["expand", "a cat", "--model-dir", str(tmp_path / "none"), "--no-download"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "config.json" in captured.err
    assert "CC BY-NC 4.0" in captured.err


_DOWNLOAD_SCRIPT = """
import json, sys
from lib_fooocus.expansion import files as expansion_files
expansion_files.SMALL_FILES.clear()
expansion_files.SMALL_FILES.update(json.loads(sys.argv[1]))
from lib_fooocus.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


def test_cli_downloads_through_hf_endpoint(tmp_path, model_dir, expected):
    """End to end in a fresh process: HF_ENDPOINT points huggingface_hub at the local fake hub."""
    original = write_model_dir(tmp_path / "original", weights="pickle")
    hub = FakeHub()
    hub.add_model_folder(original)
    folder = tmp_path / "downloaded"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1"
    )
    hashes = json.dumps(dict(small_file_hashes(original)))
    command = [
        sys.executable,
        "-c",
        _DOWNLOAD_SCRIPT,
        hashes,
        "expand",
        "a house",
        "--seed",
        "42",
        "--model-dir",
        str(folder),
        "--files-url",
        hub.url + "/github/",
    ]
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    finally:
        hub.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected[("a house", 42)] + "\n"  # same weights as model_dir
    assert LICENSE_NOTICE in result.stderr
    assert str(folder) in result.stderr
    assert (folder / "model.safetensors").is_file()
    assert any(path == "lllyasviel/misc/fooocus_expansion.bin" for _m, path, _r in hub.requests)
