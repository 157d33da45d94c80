"""The expansion under failure: damaged files are replaced or named, failed downloads are remembered,
no caller waits on another's download, one rule for the text every entry point expands."""

from __future__ import annotations

import threading
import time
import types
from pathlib import Path

import pytest
import torch
from expansion_fixtures import (
    small_file_hashes,
    source_for,
    write_model_dir,
)

from lib_fooocus.downloads import sha256_of_file
from lib_fooocus.expansion import files as expansion_files
from lib_fooocus.expansion.engine import FooocusExpansion
from lib_fooocus.expansion.files import (
    SAFETENSORS_NAME,
    BrokenWeightsError,
    ExpansionSource,
    MissingExpansionFilesError,
    ensure_expansion_files,
    load_pickle_state_dict,
    prepare_weights,
)
from lib_fooocus.expansion.service import ExpansionBusyError, ExpansionService, ExpansionSettings


@pytest.fixture(scope="module")
def ready(tmp_path_factory):
    """A complete tiny folder with safetensors weights."""
    return write_model_dir(tmp_path_factory.mktemp("ready") / "fooocus_expansion", weights="safetensors")


def copy_folder(source: Path, target: Path, names=None) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if names is None or path.name in names:
            (target / path.name).write_bytes(path.read_bytes())
    return target


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---- item 5: damaged files -------------------------------------------------------------------------


def test_small_file_with_wrong_hash_is_downloaded_again(tmp_path, online, original):
    folder = copy_folder(original, tmp_path / "models")
    (folder / "positive.txt").write_text("truncated", encoding="utf-8")
    ensure_expansion_files(folder, source_for(online, original, tmp_path / "hf"))
    assert sha256_of_file(folder / "positive.txt") == sha256_of_file(original / "positive.txt")
    assert ("GET", "/github/positive.txt", None) in online.requests
    assert not any(path == "/github/config.json" for _m, path, _r in online.requests)  # good files stay


def test_small_file_with_wrong_hash_is_refused_naming_it_when_downloads_are_off(tmp_path, original):
    folder = copy_folder(original, tmp_path / "models")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    with pytest.raises(MissingExpansionFilesError) as caught:
        ensure_expansion_files(folder, ExpansionSource(hashes=small_file_hashes(original)), allow_download=False)
    assert caught.value.missing == []
    assert list(caught.value.damaged) == ["merges.txt"]
    assert "merges.txt (sha256 differs" in str(caught.value)
    assert "Downloading is turned off" in str(caught.value)


def test_windows_line_ends_still_match_the_pinned_hash(tmp_path, original):
    folder = copy_folder(original, tmp_path / "models")
    text = (original / "positive.txt").read_bytes()
    (folder / "positive.txt").write_bytes(text.replace(b"\n", b"\r\n"))
    ensure_expansion_files(folder, ExpansionSource(hashes=small_file_hashes(original)), allow_download=False)


def test_truncated_safetensors_without_download_is_a_503_naming_the_file(tmp_path, ready):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_expansion import register_expand_route

    folder = copy_folder(ready, tmp_path / "models")
    truncate(folder / SAFETENSORS_NAME)
    settings = ExpansionSettings(
        model_dir=str(folder), allow_download=False, source=ExpansionSource(hashes=small_file_hashes(ready))
    )
    app = FastAPI()
    register_expand_route(app, lambda: ExpansionService(settings))
    response = TestClient(app, raise_server_exceptions=False).post(
        "/fooocus/v1/expand", json={"prompt": "a cat", "seed": 1}
    )
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert SAFETENSORS_NAME in detail and "MetadataIncompleteBuffer" in detail
    assert "Downloading is turned off" in detail


def test_truncated_safetensors_is_rebuilt_from_the_pickle_beside_it(tmp_path, original, ready):
    folder = copy_folder(original, tmp_path / "models")  # small files + pytorch_model.bin
    (folder / SAFETENSORS_NAME).write_bytes((ready / SAFETENSORS_NAME).read_bytes()[:1000])
    weights = ensure_expansion_files(folder, ExpansionSource(hashes=small_file_hashes(original)), allow_download=False)
    assert weights == folder / SAFETENSORS_NAME
    assert FooocusExpansion(folder).expand("a house", 3).startswith("a house,")


def test_truncated_safetensors_is_downloaded_again(tmp_path, online, original, ready):
    folder = copy_folder(ready, tmp_path / "models")
    truncate(folder / SAFETENSORS_NAME)
    ensure_expansion_files(folder, source_for(online, original, tmp_path / "hf"))
    assert FooocusExpansion(folder).expand("a house", 3).startswith("a house,")
    assert any(path.endswith("fooocus_expansion.bin") for _m, path, _r in online.requests)


@pytest.mark.parametrize("keep", [0, 5000, 0.5], ids=["empty", "head-only", "half"])
def test_truncated_pickle_is_reported_as_damaged_not_as_unsafe(tmp_path, original, keep):
    data = (original / "pytorch_model.bin").read_bytes()
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(BrokenWeightsError) as caught:
        load_pickle_state_dict(path)
    assert str(path) in str(caught.value) and "damaged or incomplete" in str(caught.value)


# ---- item 9: read-only folders convert once ----------------------------------------------------------


def test_read_only_folder_converts_once_into_the_cache(tmp_path, monkeypatch, original):
    folder = copy_folder(original, tmp_path / "readonly")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    temporary_in = expansion_files._temporary_in

    def no_writes_in_the_folder(directory: Path) -> str:
        if Path(directory) == folder:
            raise PermissionError(13, "Permission denied", str(directory))
        return temporary_in(directory)

    monkeypatch.setattr(expansion_files, "_temporary_in", no_writes_in_the_folder)
    loads = []
    real_load = expansion_files.load_pickle_state_dict
    monkeypatch.setattr(expansion_files, "load_pickle_state_dict", lambda path: loads.append(path) or real_load(path))
    first = prepare_weights(folder)
    assert first.is_relative_to(tmp_path / "cache") and first.name == SAFETENSORS_NAME
    assert not (folder / SAFETENSORS_NAME).exists()
    assert prepare_weights(folder) == first
    assert FooocusExpansion(folder).model_dir == folder
    assert len(loads) == 1  # converted once, not on every load


# ---- item 6: a failed download is remembered ---------------------------------------------------------


def test_failed_download_is_remembered_until_retry_or_the_back_off_ends(tmp_path, online, original):
    online.mode["/github/config.json"] = "broken"  # the connection closes half-way
    now = [1000.0]
    service = ExpansionService(
        ExpansionSettings(model_dir=str(tmp_path / "models"), source=source_for(online, original, tmp_path / "hf")),
        retry_after=600,
        clock=lambda: now[0],
    )
    with pytest.raises(MissingExpansionFilesError, match="The download failed") as caught:
        service.expand("a cat", 1)
    assert caught.value.download_failed
    asked = len(online.requests)
    started = time.monotonic()
    with pytest.raises(MissingExpansionFilesError, match="not downloaded again for 10 min"):
        service.expand("a cat", 1)
    assert time.monotonic() - started < 1
    assert len(online.requests) == asked  # nothing asked of the network again
    assert "press Retry" in service.status()

    now[0] += 599
    with pytest.raises(MissingExpansionFilesError, match="for 1 min"):
        service.expand("a cat", 1)
    assert len(online.requests) == asked
    now[0] += 2  # the back-off is over: tried again (and fails again)
    with pytest.raises(MissingExpansionFilesError, match="The download failed"):
        service.expand("a cat", 1)
    assert len(online.requests) > asked

    online.mode.clear()
    with pytest.raises(MissingExpansionFilesError, match="not downloaded again"):
        service.expand("a cat", 1)
    service.forget_failure()  # the Retry button
    assert service.expand("a cat", 1).startswith("a cat,")
    assert service.status().startswith("Fooocus V2 expansion: ready")


# ---- item 7: nobody waits on another's download ------------------------------------------------------


class BlockingFactory:
    """An engine factory that stands for a long download + load: it waits until released."""

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, model_dir, device=None, dtype=None):
        self.started.set()
        assert self.release.wait(30)
        return types.SimpleNamespace(device=torch.device("cpu"), expand=lambda prompt, seed: f"{prompt}, more")


def blocking_service(ready: Path) -> tuple[ExpansionService, BlockingFactory]:
    factory = BlockingFactory()
    settings = ExpansionSettings(
        model_dir=str(ready), allow_download=False, source=ExpansionSource(hashes=small_file_hashes(ready))
    )
    return ExpansionService(settings, engine_factory=factory), factory


def in_thread(function, *args):
    result: dict = {}

    def run():
        try:
            result["value"] = function(*args)
        except BaseException as error:  # reported by the test
            result["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_second_caller_gets_a_fast_busy_answer_and_unload_does_not_wait(ready):
    service, factory = blocking_service(ready)
    generation, outcome = in_thread(service.expand, "a cat", 1)  # waits as long as the load takes
    assert factory.started.wait(30)
    started = time.monotonic()
    with pytest.raises(ExpansionBusyError, match="loading the model"):
        service.expand("a dog", 2, wait=0.05)
    assert "loading the model" in service.status()
    unloading, _ = in_thread(service.unload)
    unloading.join(2)
    assert not unloading.is_alive()  # unload of a service replaced meanwhile never waits for the load
    assert time.monotonic() - started < 2
    factory.release.set()
    generation.join(30)
    assert outcome == {"value": "a cat, more"}


def test_rest_answers_503_retry_while_the_model_is_being_prepared(ready):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.webui.rest_expansion import register_expand_route

    service, factory = blocking_service(ready)
    app = FastAPI()
    register_expand_route(app, lambda: service, wait=0.05)
    client = TestClient(app)
    try:
        response = client.post("/fooocus/v1/expand", json={"prompt": "a cat", "seed": 1})
        assert factory.started.wait(30)
        assert response.status_code == 503
        assert "Try again" in response.json()["detail"]
        assert response.headers["Retry-After"].isdigit()
    finally:
        factory.release.set()
    deadline = time.monotonic() + 30
    while not service.loaded and time.monotonic() < deadline:
        time.sleep(0.01)
    response = client.post("/fooocus/v1/expand", json={"prompt": "a cat", "seed": 1})
    assert response.json() == {"expansion": "a cat, more"}


def test_changing_an_expansion_setting_during_a_load_does_not_wait_for_it(ready):
    from lib_fooocus.webui.context import FooocusContext

    factories: list[BlockingFactory] = []

    def make(settings):
        factories.append(BlockingFactory())
        return ExpansionService(settings, engine_factory=factories[-1])

    current = {"unload": False}

    def read_settings():
        return ExpansionSettings(
            model_dir=str(ready),
            allow_download=False,
            unload_after_generation=current["unload"],
            source=ExpansionSource(hashes=small_file_hashes(ready)),
        )

    context = FooocusContext(read_expansion_settings=read_settings, make_expansion_service=make)
    first = context.expansion_service()
    generation, _ = in_thread(first.expand, "a cat", 1)
    assert factories[0].started.wait(30)
    current["unload"] = True  # the user changes a setting while the model loads
    swapping, result = in_thread(context.expansion_service)
    swapping.join(2)
    try:
        assert not swapping.is_alive()
        assert result["value"] is not first
    finally:
        factories[0].release.set()
        generation.join(30)


# ---- item 10: one expansion source --------------------------------------------------------------------


def test_rest_cli_preview_and_generation_expand_the_same_text(ready, monkeypatch, capsys):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_fooocus.__main__ import main as cli_main
    from lib_fooocus.params import FooocusParams
    from lib_fooocus.styles.library import StyleLibrary
    from lib_fooocus.text import expansion_source
    from lib_fooocus.webui.generation import rewrite_prompts
    from lib_fooocus.webui.rest_expansion import register_expand_route
    from lib_fooocus.webui.ui import preview_text

    prompt, seed = "  a photo of  the cat,, <lora:detail:0.8> with the river\nsecond line", 5
    service = ExpansionService(
        ExpansionSettings(
            model_dir=str(ready), allow_download=False, source=ExpansionSource(hashes=small_file_hashes(ready))
        )
    )
    # generation
    p = types.SimpleNamespace(all_prompts=[prompt], all_negative_prompts=[""], all_seeds=[seed])
    rewrite = rewrite_prompts(p, FooocusParams(enabled=True, expansion=True), StyleLibrary.from_styles([]), service.expand)
    by_generation = rewrite.expansions[0]
    # the preview button (the source function the accordion is given)
    by_preview = preview_text(prompt, seed, service.expand, expansion_source)
    # REST
    app = FastAPI()
    register_expand_route(app, lambda: service)
    by_rest = TestClient(app).post("/fooocus/v1/expand", json={"prompt": prompt, "seed": seed}).json()["expansion"]
    # CLI
    monkeypatch.setattr(expansion_files, "SMALL_FILES", dict(small_file_hashes(ready)))
    assert cli_main(["expand", prompt, "--seed", str(seed), "--model-dir", str(ready), "--no-download", "--quiet"]) == 0
    by_cli = capsys.readouterr().out.rstrip("\n")
    assert by_generation.startswith("a photo of the cat, with the river,")
    assert by_preview == by_generation
    assert by_rest == by_generation
    assert by_cli == by_generation


def test_generation_batch_through_the_service_equals_one_expand_per_image(ready):
    from lib_fooocus.params import FooocusParams
    from lib_fooocus.styles.library import StyleLibrary
    from lib_fooocus.text import expansion_source
    from lib_fooocus.webui.generation import rewrite_prompts

    service = ExpansionService(
        ExpansionSettings(
            model_dir=str(ready), allow_download=False, source=ExpansionSource(hashes=small_file_hashes(ready))
        )
    )
    prompt, seeds = "a photo of the cat <lora:x:1>", [5, 6, 5, 2**32 + 6]
    p = types.SimpleNamespace(
        all_prompts=[prompt] * 4, all_negative_prompts=[""] * 4, all_seeds=seeds, batch_size=4
    )
    params = FooocusParams(enabled=True, expansion=True)
    rewrite = rewrite_prompts(p, params, StyleLibrary.from_styles([]), service.expand, None, service.expand_batch)
    expected = [service.expand(expansion_source(prompt), seed) for seed in seeds]
    assert rewrite.expansions == expected
    assert len(set(expected)) == 2  # 6 and 2**32 + 6 are the same seed to the expansion
    assert service.expand_batch("", [1, 2]) == ["", ""]


# ---- item 11: the accordion's status follows a first-use download live -------------------------------


def fake_engine(model_dir, device=None, dtype=None):
    return types.SimpleNamespace(device=torch.device("cpu"), expand=lambda prompt, seed: f"{prompt}, more")


def download_context(tmp_path, hub, original):
    """A UI context whose service downloads an empty folder from the fake hub."""
    from lib_fooocus.webui.context import FooocusContext

    settings = ExpansionSettings(model_dir=str(tmp_path / "models"), source=source_for(hub, original, tmp_path / "hf"))
    service = ExpansionService(settings, engine_factory=fake_engine)
    context = FooocusContext(read_expansion_settings=lambda: settings, make_expansion_service=lambda _s: service)
    return context, service


def state_when(context, predicate, seconds: float = 20.0):
    """The context's state once `predicate(state)` holds (the download thread moves it on)."""
    deadline = time.monotonic() + seconds
    while True:
        state = context.expansion_state()
        if predicate(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.01)


@pytest.mark.parametrize(
    ("held", "sent", "step"),
    [("/github/tokenizer.json", 10_000, "downloading tokenizer.json (2/8)"),
     ("lllyasviel/misc/fooocus_expansion.bin", 65_536, "downloading fooocus_expansion.bin (8/8, the large one)")],
    ids=["small-file", "hub-weights"],
)
def test_ui_status_shows_the_bytes_of_a_download_in_progress(tmp_path, online, original, monkeypatch, held, sent, step):
    """A download held part-way by the local server: the status the accordion polls shows that file,
    the bytes so far of its size, the share as a progress bar, and `busy` (keep polling); once it
    is over, `ready` without a bar. The weights come through huggingface_hub, whose partial file is
    what is measured (its 10 MB write chunks made small here, so a tiny file shows part-way)."""
    from huggingface_hub import constants

    from lib_fooocus.downloads import human_size
    from lib_fooocus.expansion.service import BUSY, READY
    from lib_fooocus.webui.ui import status_html

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16_384)
    total = len(online.files[held])
    hold = online.hold(held, sent)
    context, service = download_context(tmp_path, online, original)
    with pytest.raises(ExpansionBusyError):
        service.engine(wait=0)  # starts the download in the background, as a first preview does
    assert hold.reached.wait(30), "the download never reached the held file"
    expected = f"Fooocus V2 expansion: {step}: {human_size(sent)} of {human_size(total)} ({sent * 100 // total}%)…"
    state = state_when(context, lambda s: s.text == expected)
    try:
        assert state.text == expected
        assert state.kind == BUSY and state.fraction == pytest.approx(sent / total)
        shown = status_html(context.expansion_state())
        assert 'data-state="busy"' in shown and f'value="{sent * 100 // total}"' in shown
        assert f"{human_size(sent)} of {human_size(total)}" in shown
    finally:
        hold.released.set()
    service.engine(wait=60)
    done = context.expansion_state()
    assert done.kind == READY and done.text == "Fooocus V2 expansion: ready (on cpu)."
    assert "<progress" not in status_html(done)


def test_ui_status_says_why_the_expansion_is_unavailable_and_how_to_fix_it(tmp_path, online, original, ready):
    from lib_fooocus.expansion.service import IDLE, UNAVAILABLE

    online.mode["/github/config.json"] = "broken"
    context, service = download_context(tmp_path, online, original)
    assert context.expansion_state().kind == IDLE  # "will be downloaded on first use"
    with pytest.raises(MissingExpansionFilesError):
        service.engine(wait=30)
    failed = context.expansion_state()
    assert failed.kind == UNAVAILABLE and failed.fraction is None
    assert "The download failed" in failed.text and "press Retry" in failed.text
    # a failure that is no download's (a damaged file, downloads off) is said as it was, not as
    # "not loaded yet" (the files are all there, only one cannot be read)
    folder = copy_folder(ready, tmp_path / "damaged")
    truncate(folder / SAFETENSORS_NAME)
    damaged = ExpansionService(ExpansionSettings(model_dir=str(folder), allow_download=False,
                                                 source=ExpansionSource(hashes=small_file_hashes(ready))))
    with pytest.raises(MissingExpansionFilesError):
        damaged.engine(wait=30)
    state = damaged.state()
    assert state.kind == UNAVAILABLE
    assert "Damaged in" in state.text and SAFETENSORS_NAME in state.text and "Downloading is turned off" in state.text
