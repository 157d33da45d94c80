"""The expansion parity case's model folder, without a host and without Fooocus's files: the seeded GPT-2
weights fit the model (nothing left to a random init), are the same bytes every time, load in the
extension next to small files it did not pin weights for; the host-side folder is checked against the
reference's sha256 before use; the reference maker stores no expansion text made of a given word list;
the parity requests carry no UI-only setting (the hosts ignore those from the API)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "parity"))

import expansion_model
import make_fooocus_reference
import parity_host
import webui_host  # on the path through parity_host
from cases import CASES_BY_NAME, DATA_DIR

from lib_fooocus.expansion.engine import FooocusExpansion
from lib_fooocus.expansion.files import ExpansionSource, ensure_expansion_files

MADE_UP = DATA_DIR / "expansion_model"  # our own made-up model: its small files stand in for Fooocus's
# sha256 of the seeded weights for MADE_UP's config (n_embd 32, 2 layers, vocab 600): numpy's PCG64 normal
# draws, as the references rely on them. If this changes, so do the weights of the expansion reference.
MADE_UP_WEIGHTS_SHA256 = "78fc0ac1e12f5b3dd785949e851553e2f0adf0683d8b2cb4c0023c50b39d9de5"
FOOOCUS_SHAPED = {"n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257, "n_positions": 1024,
                  "n_inner": None, "activation_function": "gelu_new"}  # facts of Fooocus's config.json


def model_parameter_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    from transformers import GPT2Config, GPT2LMHeadModel

    with torch.device("meta"):
        model = GPT2LMHeadModel(GPT2Config(**config))
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()
            if not name.endswith((".attn.bias", ".attn.masked_bias")) and name != "lm_head.weight"}


@pytest.mark.parametrize("config", [FOOOCUS_SHAPED, {"n_embd": 16, "n_layer": 3, "n_head": 2, "vocab_size": 40,
                                                     "n_positions": 8, "n_inner": 24}], ids=["fooocus", "inner"])
def test_parameter_shapes_are_every_stored_parameter_of_gpt2(config) -> None:
    assert expansion_model.gpt2_parameter_shapes(config) == model_parameter_shapes(config)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_given_files_and_seeded_weights_load_in_the_extension_fully_and_the_same_every_time(tmp_path) -> None:
    from transformers import GPT2LMHeadModel

    first = expansion_model.write_model_with_given_files(tmp_path / "a", MADE_UP)
    again = expansion_model.write_model_with_given_files(tmp_path / "b", MADE_UP)
    other_seed = expansion_model.write_model_with_given_files(tmp_path / "c", MADE_UP, seed=1)
    assert first == again
    assert other_seed["model.safetensors"] != first["model.safetensors"]
    assert first["model.safetensors"] == MADE_UP_WEIGHTS_SHA256
    assert {name: first[name] for name in expansion_model.SMALL_FILES} == {
        name: sha256(MADE_UP / name) for name in expansion_model.SMALL_FILES}
    _, info = GPT2LMHeadModel.from_pretrained(str(tmp_path / "a"), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    # the extension pins the small files only: seeded weights beside files it accepts are used as they are
    pins = ExpansionSource(hashes=tuple((name, first[name]) for name in expansion_model.SMALL_FILES))
    assert ensure_expansion_files(tmp_path / "a", pins, allow_download=False) == tmp_path / "a" / "model.safetensors"
    text = FooocusExpansion(tmp_path / "a").expand("a small robot gardener", 4242)
    assert text.startswith("a small robot gardener,") and len(text) > len("a small robot gardener,")
    assert FooocusExpansion(tmp_path / "b").expand("a small robot gardener", 4242) == text


def test_a_missing_small_file_is_named(tmp_path) -> None:
    source = tmp_path / "source"
    expansion_model.copy_small_files(MADE_UP, source)
    (source / "positive.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"positive\.txt"):
        expansion_model.write_model_with_given_files(tmp_path / "out", source)


# -- host side: the folder handed to the host -----------------------------------------------------------


@pytest.fixture(scope="module")
def made_up_record(tmp_path_factory) -> dict:
    hashes = expansion_model.write_model_with_given_files(tmp_path_factory.mktemp("record"), MADE_UP)
    return {"sha256": hashes}


def test_host_folder_is_made_once_from_the_given_files_and_matches_the_record(tmp_path, made_up_record) -> None:
    folder = parity_host.prepare_expansion_folder(made_up_record, str(MADE_UP), tmp_path)
    assert {name: sha256(folder / name) for name in made_up_record["sha256"]} == made_up_record["sha256"]
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert parity_host.prepare_expansion_folder(made_up_record, str(MADE_UP), tmp_path) == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not rewritten


def test_host_folder_refuses_other_small_files(tmp_path, made_up_record) -> None:
    source = tmp_path / "source"
    expansion_model.copy_small_files(MADE_UP, source)
    (source / "positive.txt").write_text("other\nwords\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"holds other expansion files than the reference was made with \(positive\.txt"):
        parity_host.prepare_expansion_folder(made_up_record, str(source), tmp_path / "scratch")
    assert not (tmp_path / "scratch").exists()  # refused before anything was written


def test_host_folder_refuses_weights_other_than_the_references(tmp_path, made_up_record) -> None:
    record = {"sha256": {**made_up_record["sha256"], "model.safetensors": "0" * 64}}
    with pytest.raises(ValueError, match="seeded expansion weights"):
        parity_host.prepare_expansion_folder(record, str(MADE_UP), tmp_path)


@pytest.mark.parametrize(("record", "small_files", "reason"), [
    (None, str(MADE_UP), "records no model files"),
    ({"sha256": {"x": "0" * 64}}, None, "SD_WEBUI_EXPANSION_SMALL_FILES is not set"),
    ({"sha256": {"x": "0" * 64}}, "  ", "SD_WEBUI_EXPANSION_SMALL_FILES is not set"),
    ({"sha256": {"x": "0" * 64}}, "/nonexistent/fooocus_expansion", "is not a folder"),
])
def test_host_folder_unavailable_says_why(tmp_path, record, small_files, reason) -> None:
    with pytest.raises(parity_host.ExpansionFolderUnavailable, match=reason):
        parity_host.prepare_expansion_folder(record, small_files, tmp_path)


def test_host_settings_file_keeps_the_hosts_settings_and_adds_the_expansion_folder(tmp_path) -> None:
    webui = tmp_path / "webui"
    webui.mkdir()
    (webui / "config.json").write_text(json.dumps({"live_previews_enable": False}), encoding="utf-8")
    written = webui_host.host_settings_file(webui, tmp_path / "ui.json",
                                            parity_host.expansion_settings(tmp_path / "model"))
    assert json.loads(written.read_text(encoding="utf-8")) == {
        "live_previews_enable": False, "fooocus_expansion_model_dir": str(tmp_path / "model"),
        "fooocus_expansion_allow_download": False}
    assert parity_host.expansion_settings(None) == {}


def test_parity_requests_carry_no_ui_only_setting() -> None:
    """The hosts drop UI-only settings from `override_settings` without a word, so a request naming one
    would only look as if it set it."""
    from lib_fooocus.webui.settings import UI_ONLY_KEYS

    for forge in (False, True):
        body = parity_host.txt2img_request(CASES_BY_NAME["expansion"], forge=forge, refiner_title=None, match=True)
        assert not set(body["override_settings"]) & UI_ONLY_KEYS


# -- reference maker: what the expansion case stores ----------------------------------------------------


def test_reference_with_given_files_stores_the_expansion_texts_digest_only() -> None:
    case = CASES_BY_NAME["expansion"]
    expansion = "a small robot gardener, lumtez vorkin"
    texts = ["a small robot gardener", expansion]
    files = {"positive.txt": "1" * 64, "model.safetensors": "2" * 64}
    entries = make_fooocus_reference.expansion_entries(case, texts, 1, files)
    assert "lumtez" not in json.dumps(entries)
    assert entries["expansion_sha256"] == hashlib.sha256(expansion.encode()).hexdigest()
    assert entries["positive_workloads"] == ["a small robot gardener"]
    assert entries["expansion_model"]["sha256"] == files
    made_up = make_fooocus_reference.expansion_entries(case, texts, 1, None)
    assert made_up == {"expansion": expansion, "positive_workloads": texts}
