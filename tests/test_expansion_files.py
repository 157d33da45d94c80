"""Expansion model files: safe pickle loading, offline messages, downloads from a local fake hub."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from expansion_fixtures import (
    SMALL_NAMES,
    small_file_hashes,
    source_for,
    write_model_dir,
)

from lib_fooocus.downloads import sha256_of_file
from lib_fooocus.expansion import files as expansion_files
from lib_fooocus.expansion.engine import FooocusExpansion
from lib_fooocus.expansion.files import (
    LICENSE_NOTICE,
    SAFETENSORS_NAME,
    ExpansionSource,
    MissingExpansionFilesError,
    UnsafeWeightsError,
    convert_pickle_to_safetensors,
    ensure_expansion_files,
    load_pickle_state_dict,
    missing_files,
)

# ---- safe loading -----------------------------------------------------------------------------------


class _WritesMarker:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    folder = write_model_dir(tmp_path / "evil", weights="none")
    state = {"transformer.wte.weight": torch.zeros(2, 2), "payload": _WritesMarker(marker)}
    with open(folder / "pytorch_model.bin", "wb") as handle:
        pickle.dump(state, handle)
    # Sanity check that the payload is live: a plain unpickle would run it.
    assert not marker.exists()
    with pytest.raises(UnsafeWeightsError) as caught:
        FooocusExpansion(folder)
    assert not marker.exists()
    assert "pytorch_model.bin" in str(caught.value)
    assert not (folder / SAFETENSORS_NAME).exists()
    with open(folder / "pytorch_model.bin", "rb") as handle:
        pickle.load(handle)
    assert marker.read_text() == "code ran"


def test_torch_saved_malicious_object_is_refused(tmp_path):
    marker = tmp_path / "marker2.txt"
    path = tmp_path / "weights.bin"
    torch.save({"w": torch.ones(1), "x": _WritesMarker(marker)}, path)
    with pytest.raises(UnsafeWeightsError):
        load_pickle_state_dict(path)
    assert not marker.exists()


def test_pickle_of_non_tensors_is_refused(tmp_path):
    path = tmp_path / "weights.bin"
    torch.save({"w": [1, 2, 3]}, path)
    with pytest.raises(UnsafeWeightsError, match="mapping of parameter names to tensors"):
        load_pickle_state_dict(path)


def test_conversion_drops_buffers_and_the_tied_head(tmp_path):
    embedding = torch.randn(5, 4).half()
    state = {
        "transformer.wte.weight": embedding,
        "lm_head.weight": embedding,
        "transformer.h.0.attn.bias": torch.ones(1, 1, 4, 4),
        "transformer.h.0.attn.masked_bias": torch.tensor(-1e4),
        "transformer.h.0.mlp.c_fc.weight": torch.randn(4, 8).half(),
    }
    torch.save(state, tmp_path / "w.bin")
    written = convert_pickle_to_safetensors(tmp_path / "w.bin", tmp_path / "out" / SAFETENSORS_NAME)
    from safetensors.torch import load_file

    loaded = load_file(str(written))
    assert set(loaded) == {"transformer.wte.weight", "transformer.h.0.mlp.c_fc.weight"}
    assert loaded["transformer.wte.weight"].dtype == torch.float16
    assert torch.equal(loaded["transformer.h.0.mlp.c_fc.weight"], state["transformer.h.0.mlp.c_fc.weight"])
    assert [p.name for p in written.parent.iterdir()] == [SAFETENSORS_NAME]  # no temporary left


# ---- missing files -----------------------------------------------------------------------------------


def test_offline_with_missing_files_gives_one_message(tmp_path, monkeypatch, original):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tmp_path / "manual"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "positive.txt"):
        (folder / name).write_bytes((original / name).read_bytes())
    with pytest.raises(MissingExpansionFilesError) as caught:
        ensure_expansion_files(folder, ExpansionSource(hashes=small_file_hashes(original)))
    error = caught.value
    expected_missing = ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"]
    assert error.missing == [*expected_missing, expansion_files.WEIGHTS_LABEL]
    message = str(error)
    for name in (*expected_missing, "model.safetensors", "pytorch_model.bin"):
        assert name in message
    assert "config.json" not in message.split("missing in")[1].split(".")[0]
    assert str(folder) in message
    assert "HF_HUB_OFFLINE" in message
    assert LICENSE_NOTICE in message


def test_download_turned_off_lists_everything(tmp_path):
    with pytest.raises(MissingExpansionFilesError) as caught:
        ensure_expansion_files(tmp_path / "none", allow_download=False)
    assert caught.value.missing == [*SMALL_NAMES_IN_SPEC_ORDER, expansion_files.WEIGHTS_LABEL]
    assert "Downloading is turned off" in str(caught.value)


SMALL_NAMES_IN_SPEC_ORDER = list(expansion_files.SMALL_FILES)


def test_hand_placed_complete_folder_works_offline(tmp_path, monkeypatch, original):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = write_model_dir(tmp_path / "hand", weights="hub-pickle")
    assert missing_files(folder) == []
    source = ExpansionSource(hashes=small_file_hashes(folder))  # the tiny model's own files are "pinned"
    ensure_expansion_files(folder, source, allow_download=False)
    engine = FooocusExpansion(folder)
    assert engine.expand("a house", 1).startswith("a house,")
    assert (folder / SAFETENSORS_NAME).is_file()


def test_pinned_hashes_cover_the_issue_file_list():
    assert set(expansion_files.SMALL_FILES) == set(SMALL_NAMES)
    assert all(len(h) == 64 for h in expansion_files.SMALL_FILES.values())


# ---- downloads from the fake hub --------------------------------------------------------------------


@pytest.mark.usefixtures("online")
def test_download_into_empty_folder(tmp_path, hub, original, caplog):
    folder = tmp_path / "models" / "fooocus_expansion"
    caplog.set_level("INFO")
    ensure_expansion_files(folder, source_for(hub, original, tmp_path / "hf"))
    for name in SMALL_NAMES:
        assert sha256_of_file(folder / name) == sha256_of_file(original / name)
    assert (folder / SAFETENSORS_NAME).is_file()
    assert not (folder / "fooocus_expansion.bin").exists()  # the pickle stays in the hub cache
    assert LICENSE_NOTICE in caplog.text
    assert str(folder) in caplog.text
    downloaded = FooocusExpansion(folder)
    reference = FooocusExpansion(write_model_dir(tmp_path / "direct", weights="pickle"))
    assert downloaded.expand("a photo of the cat", 5) == reference.expand("a photo of the cat", 5)
    # Complete now: a second call downloads nothing.
    count = len(hub.requests)
    ensure_expansion_files(folder, source_for(hub, original, tmp_path / "hf"))
    assert len(hub.requests) == count


@pytest.mark.usefixtures("online")
def test_truncated_weights_are_never_used_and_the_next_try_succeeds(tmp_path, hub, original):
    folder = tmp_path / "trunc"
    source = source_for(hub, original, tmp_path / "hf")
    hub.mode["lllyasviel/misc/fooocus_expansion.bin"] = "truncated"
    with pytest.raises(MissingExpansionFilesError) as caught:
        ensure_expansion_files(folder, source)
    assert caught.value.missing == [expansion_files.WEIGHTS_LABEL]
    assert "download failed" in str(caught.value)
    assert not (folder / SAFETENSORS_NAME).exists()
    assert not list((tmp_path / "hf").rglob("fooocus_expansion.bin"))  # no usable file in the cache
    hub.mode.clear()
    ensure_expansion_files(folder, source)
    assert (folder / SAFETENSORS_NAME).is_file()


@pytest.mark.usefixtures("online")
def test_weights_with_wrong_hash_are_removed_and_refused(tmp_path, hub, original):
    folder = tmp_path / "wrong"
    source = source_for(hub, original, tmp_path / "hf")
    hub.mode["lllyasviel/misc/fooocus_expansion.bin"] = "wrong"
    with pytest.raises(MissingExpansionFilesError) as caught:
        ensure_expansion_files(folder, source)
    assert "sha256" in str(caught.value)
    assert not (folder / SAFETENSORS_NAME).exists()
    cached = [p for p in (tmp_path / "hf").rglob("blobs/*") if p.is_file()]
    assert cached == []  # the bad bytes did not stay in the cache
    hub.mode.clear()
    ensure_expansion_files(folder, source)
    assert (folder / SAFETENSORS_NAME).is_file()


@pytest.mark.usefixtures("online")
def test_small_file_with_wrong_hash_is_not_put_into_the_folder(tmp_path, hub, original):
    folder = tmp_path / "small"
    hub.mode["/github/positive.txt"] = "wrong"
    with pytest.raises(MissingExpansionFilesError) as caught:
        ensure_expansion_files(folder, source_for(hub, original, tmp_path / "hf"))
    assert "positive.txt" in str(caught.value)
    assert not (folder / "positive.txt").exists()


@pytest.mark.usefixtures("online")
def test_small_files_from_a_hub_repo(tmp_path, hub, original):
    for name in SMALL_NAMES:
        hub.files[f"someone/fooocus-files/{name}"] = (original / name).read_bytes()
    source = ExpansionSource(
        files_repo="someone/fooocus-files",
        endpoint=hub.endpoint,
        cache_dir=str(tmp_path / "hf"),
        hashes=small_file_hashes(original),
    )
    folder = tmp_path / "from_hub"
    ensure_expansion_files(folder, source)
    assert all((folder / name).is_file() for name in SMALL_NAMES)
    assert not any(path.startswith("/github/") for _method, path, _range in hub.requests)


def test_offline_never_contacts_the_hub(tmp_path, hub, original, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingExpansionFilesError):
        ensure_expansion_files(tmp_path / "off", source_for(hub, original, tmp_path / "hf"))
    assert hub.requests == []
    assert not os.path.exists(tmp_path / "off")


@pytest.mark.usefixtures("online")
def test_pinned_weights_sha256_must_match_the_hub(tmp_path, hub, original):
    import dataclasses

    source = source_for(hub, original, tmp_path / "hf")
    pinned = dataclasses.replace(source, weights_sha256="0" * 64)
    with pytest.raises(MissingExpansionFilesError, match="pins"):
        ensure_expansion_files(tmp_path / "pinned", pinned)
    assert not any(method == "GET" and "fooocus_expansion" in path for method, path, _r in hub.requests)
    good = dataclasses.replace(source, weights_sha256=sha256_of_file(original / "pytorch_model.bin").upper())
    ensure_expansion_files(tmp_path / "pinned", good)
    assert (tmp_path / "pinned" / SAFETENSORS_NAME).is_file()
