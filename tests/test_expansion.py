"""Fooocus V2 expansion engine on a tiny random GPT-2 made in the test (no network)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from expansion_fixtures import (  # noqa: F401  (_one_torch_thread is an autouse fixture)
    POSITIVE_WORDS,
    _one_torch_thread,
    reference_bias,
    reference_generate,
    write_model_dir,
)

from lib_fooocus.expansion import engine as engine_module
from lib_fooocus.expansion.engine import (
    FooocusExpansion,
    MissingExpansionFilesError,
    apply_cleanup_spaces,
    max_new_tokens_for,
    safe_str,
)
from lib_fooocus.text import expansion_source

PROMPTS_AND_SEEDS = [
    ("a photo of the cat", 1),
    ("a house", 42),
    ("kaka lolo with the river", 123456789),
    ("  The   tree , in the river.. ", 7),
    ("dog " * 40, 2**32 + 5),
    ("cat, dog; house! kalo mimi", 99),
]
# Against generate(): every prompt with three seeds. A top-k of 99 or 101 instead of 100 changes a draw
# only when it would have been the 100th (101st) word, at most ~1/100 per step and only while more
# than 100 allowed words are unbanned, so it takes this many draws on the flat model to show.
EXACTNESS_CASES = [(prompt, (seed + 7919 * i) % 2**32) for prompt, seed in PROMPTS_AND_SEEDS for i in range(3)]
# The final layer norm's gain times this: nearly flat word distributions, so that the 100th and
# 101st words are drawn often enough to tell top-k 100 from 99 and 101.
FLAT_LOGITS = 0.1


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_model_dir(
        tmp_path_factory.mktemp("expansion") / "fooocus_expansion", weights="safetensors", logit_scale=FLAT_LOGITS
    )


@pytest.fixture(scope="module")
def engine(model_dir):
    return FooocusExpansion(model_dir)


@pytest.fixture(scope="module")
def exact_engine(model_dir):
    return FooocusExpansion(model_dir, exact_head=True)


@pytest.fixture(scope="module")
def references(engine, model_dir):
    """`reference(prompt, seed)`: the prompt's ids and generate()'s new tokens, computed once per case."""
    cache = {}

    def reference(prompt, seed):
        if (prompt, seed) not in cache:
            prompt_ids = engine.encode(safe_str(prompt) + ",")
            cache[prompt, seed] = prompt_ids, reference_generate(engine.model, model_dir, prompt_ids, seed)
        return cache[prompt, seed]

    return reference


@pytest.fixture(scope="module")
def hf_tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def allowed_ids(model_dir):
    bias, comma = reference_bias(model_dir, 1000)
    return set(torch.nonzero(bias[0] == 0).flatten().tolist()) | {comma}, comma


# ---- string helpers -------------------------------------------------------------------------------


def test_safe_str_collapses_spaces_and_strips_fooocus_characters():
    assert safe_str("  a    cat ,. \r\n") == "a cat"
    assert safe_str(",.a, b.,") == "a, b"
    assert safe_str(12) == "12"
    assert safe_str("x" + " " * 40 + "y") == "x y"


def test_cleanup_spaces_matches_the_spec_list_in_order():
    assert apply_cleanup_spaces("a , b . c ! d ? e") == "a, b. c! d? e"
    assert apply_cleanup_spaces("do n't I 'm it 's we 've they 're") == "don't I'm it's we've they're"
    assert apply_cleanup_spaces("a ' b") == "a'b"


def test_cleanup_spaces_matches_transformers_own_cleanup_where_it_exists():
    import inspect

    from transformers import PreTrainedTokenizerBase

    cleanup = inspect.getattr_static(PreTrainedTokenizerBase, "clean_up_tokenization", None)
    if not isinstance(cleanup, staticmethod):  # transformers 5 made it a per-tokenizer method
        pytest.skip("this transformers release has no static clean_up_tokenization (4.x had, as Fooocus's)")
    cleanup = PreTrainedTokenizerBase.clean_up_tokenization
    text = "Hello , world . Is n't it ? Yes ! I 'm sure it 's fine , we 've said they 're ' ok ' ."
    assert apply_cleanup_spaces(text) == cleanup(text)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a cat <lora:detail:0.8>, best", "a cat, best"),
        ("<lora:a:1><hypernet:b:0.5> photo of a dog\nsecond line <lora:x:1>", "photo of a dog"),
        ("\n\n  real  prompt ,, more\nnext", "real prompt, more"),
        ("\n<lyco:thing:1>\nreal prompt", ""),  # the main line holds only a tag: nothing to expand
        ("no tags at all", "no tags at all"),
        ("a <b> tag that is not a network", "a <b> tag that is not a network"),
        ("", ""),
    ],
)
def test_expansion_source_is_the_cleaned_main_line_without_tags(prompt, expected):
    assert expansion_source(prompt) == expected


@pytest.mark.parametrize(
    ("length", "expected"), [(1, 74), (6, 69), (74, 1), (75, 0), (76, 74), (150, 0), (151, 74)]
)
def test_max_new_tokens_fills_to_next_multiple_of_75(length, expected):
    assert max_new_tokens_for(length) == expected


# ---- generation rules -----------------------------------------------------------------------------


def test_tokenizer_encoding_matches_transformers_fast_tokenizer(engine, hf_tokenizer):
    for prompt, _seed in PROMPTS_AND_SEEDS:
        text = safe_str(prompt) + ","
        assert engine.encode(text) == hf_tokenizer(text)["input_ids"]


def test_only_allowed_words_and_commas_without_repeats_or_prompt_tokens(engine, model_dir):
    allowed, comma = allowed_ids(model_dir)
    assert len(allowed) == len(POSITIVE_WORDS) + 1  # every made-up word is one token, plus ','
    prompt = "the kaka lolo mimi with the river"  # holds three allowed words
    prompt_ids = engine.encode(prompt + ",")
    in_prompt = set(prompt_ids) & allowed - {comma}
    assert len(in_prompt) == 3
    for seed in range(6):
        new = engine.sample_tokens(prompt_ids, max_new_tokens_for(len(prompt_ids)), seed)
        words = [t for t in new if t != comma]
        assert set(new) <= allowed
        assert len(words) == len(set(words))
        assert not set(words) & in_prompt
        assert len(words) > 30  # the words do get sampled


def test_length_fills_the_75_token_chunk(engine):
    for prompt, seed in PROMPTS_AND_SEEDS:
        text = safe_str(prompt) + ","
        prompt_ids = engine.encode(text)
        result = engine.expand(prompt, seed)
        assert result.startswith(safe_str(apply_cleanup_spaces(text[:-1])))
        new = engine.sample_tokens(prompt_ids, max_new_tokens_for(len(prompt_ids)), seed % 2**32)
        assert (len(prompt_ids) + len(new)) % 75 == 0


def test_prompt_of_exactly_75_tokens_is_returned_without_the_comma(engine):
    prompt = "kaka" + " kaka" * 73
    assert len(engine.encode(prompt + ",")) == 75
    assert engine.expand(prompt, 3) == prompt


def test_empty_prompt_gives_empty_text(engine):
    assert engine.expand("", 5) == ""


def test_deterministic_per_seed_and_seeds_differ(engine):
    first = engine.expand("a photo of the cat", 11)
    assert engine.expand("a photo of the cat", 11) == first
    others = {engine.expand("a photo of the cat", seed) for seed in (12, 13, 14)}
    assert first not in others
    assert len(others) == 3


def test_seed_is_taken_mod_2_pow_32(engine):
    assert engine.expand("a house", 5 + 2**32) == engine.expand("a house", 5)
    assert engine.expand("a house", -1) == engine.expand("a house", 2**32 - 1)


def test_global_random_state_is_untouched(engine):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    python_state, numpy_state, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    engine.expand("a photo of the cat", 77)
    assert random.getstate() == python_state
    after = np.random.get_state()
    assert after[0] == numpy_state[0]
    assert np.array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)


# ---- against transformers' generate() -------------------------------------------------------------


@pytest.mark.parametrize(("prompt", "seed"), EXACTNESS_CASES)
def test_tokens_equal_generate_reference(engine, exact_engine, references, prompt, seed):
    prompt_ids, reference = references(prompt, seed)
    assert len(reference) == max_new_tokens_for(len(prompt_ids))
    assert exact_engine.sample_tokens(prompt_ids, len(reference), seed) == reference
    assert engine.sample_tokens(prompt_ids, len(reference), seed) == reference


@pytest.mark.parametrize("top_k", [99, 101])
@pytest.mark.parametrize("exact_head", [False, True])
def test_the_cases_tell_top_k_100_from_its_neighbours(monkeypatch, engine, exact_engine, references, top_k, exact_head):
    """Guards the fixture: on a model too peaked for the 100th word ever to be drawn, the test above
    would pass with a wrong top-k."""
    chosen = exact_engine if exact_head else engine
    monkeypatch.setattr(engine_module, "TOP_K", top_k)
    assert any(
        chosen.sample_tokens(prompt_ids, len(reference), seed) != reference
        for prompt_ids, reference, seed in ((*references(p, s), s) for p, s in EXACTNESS_CASES)
    )


def test_text_equals_decoded_reference(engine, model_dir, hf_tokenizer):
    for prompt, seed in PROMPTS_AND_SEEDS[:3]:
        prompt_ids = hf_tokenizer(safe_str(prompt) + ",")["input_ids"]
        reference = reference_generate(engine.model, model_dir, prompt_ids, seed)
        text = hf_tokenizer.decode(
            prompt_ids + reference, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        assert engine.expand(prompt, seed) == safe_str(apply_cleanup_spaces(text))


def test_fewer_allowed_words_than_top_k(tmp_path):
    folder = write_model_dir(tmp_path / "few", weights="safetensors", positive_words=POSITIVE_WORDS[:30])
    engine = FooocusExpansion(folder)
    allowed, _comma = allowed_ids(folder)
    assert len(allowed) == 31
    for prompt, seed in PROMPTS_AND_SEEDS[:3]:
        prompt_ids = engine.encode(safe_str(prompt) + ",")
        reference = reference_generate(engine.model, folder, prompt_ids, seed)
        assert engine.sample_tokens(prompt_ids, len(reference), seed) == reference
        assert set(reference) <= allowed


# ---- loading ---------------------------------------------------------------------------------------


def test_pickle_weights_are_converted_to_safetensors_and_give_the_same_text(tmp_path, engine):
    folder = write_model_dir(tmp_path / "from_pickle", weights="pickle", logit_scale=FLAT_LOGITS)
    converted = FooocusExpansion(folder)
    safetensors_path = folder / "model.safetensors"
    assert safetensors_path.is_file()
    from safetensors import safe_open

    with safe_open(str(safetensors_path), framework="pt") as handle:
        assert handle.metadata() == {"format": "pt"}
        names = set(handle.keys())
    pickle_state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    for name in names:
        with safe_open(str(safetensors_path), framework="pt") as handle:
            assert torch.equal(handle.get_tensor(name), pickle_state[name])
    assert not any(name.endswith((".attn.bias", ".attn.masked_bias")) for name in names)
    for prompt, seed in PROMPTS_AND_SEEDS[:3]:
        assert converted.expand(prompt, seed) == engine.expand(prompt, seed)
    # From then on the safetensors copy is used: the pickle can go.
    (folder / "pytorch_model.bin").unlink()
    assert FooocusExpansion(folder).expand("a house", 42) == engine.expand("a house", 42)


def test_missing_engine_files_raise_one_clear_error(tmp_path):
    folder = write_model_dir(tmp_path / "partial", weights="none")
    (folder / "positive.txt").unlink()
    with pytest.raises(MissingExpansionFilesError) as caught:
        FooocusExpansion(folder)
    message = str(caught.value)
    assert "positive.txt" in message
    assert str(folder) in message
    assert "CC BY-NC 4.0" in message


def test_mismatched_vocab_is_reported(tmp_path):
    folder = write_model_dir(tmp_path / "mismatch", weights="safetensors")
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 10
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises((ValueError, RuntimeError)):
        FooocusExpansion(folder)


def test_prompt_longer_than_the_model_reads_is_returned_unexpanded(engine):
    prompt = " ".join(["the cat"] * 110)  # 220 tokens: 225 positions needed, the tiny model has 256
    assert engine.expand(prompt, 1).startswith(prompt + ",")
    too_long = " ".join(["the cat"] * 130)  # 260 tokens + ',' -> needs 300 positions
    assert engine.expand(too_long, 1) == too_long


def test_exact_head_is_automatic_by_dtype(model_dir, engine, exact_engine):
    # float32: the allowed-rows head (rounding ≈1e-7); float16: a rounding step is ~1e-3, so the
    # full head is evaluated as generate() does.
    assert engine.exact_head is False
    assert exact_engine.exact_head is True
    assert FooocusExpansion(model_dir, dtype=torch.float16).exact_head is True
    assert FooocusExpansion(model_dir, dtype=torch.float16, exact_head=False).exact_head is False


# ---- batched expansion -----------------------------------------------------------------------------

BATCH_SEEDS = {
    1: [42],
    2: [3, 2**32 + 9],
    5: [1, 99, 123456789, 7, 2**31],
}


@pytest.mark.parametrize("count", sorted(BATCH_SEEDS))
@pytest.mark.parametrize("exact", [False, True], ids=["fast-head", "exact-head"])
def test_expand_batch_is_token_exact_to_sequential_expands(engine, exact_engine, count, exact):
    current = exact_engine if exact else engine
    seeds = BATCH_SEEDS[count]
    for prompt in ("a photo of the cat", "kaka lolo with the river"):
        prompt_ids = current.encode(safe_str(prompt) + ",")
        new_tokens = max_new_tokens_for(len(prompt_ids))
        rows = current.sample_tokens_batch(prompt_ids, new_tokens, [s % 2**32 for s in seeds])
        assert rows == [current.sample_tokens(prompt_ids, new_tokens, s % 2**32) for s in seeds]
        texts = current.expand_batch(prompt, seeds)
        assert texts == [current.expand(prompt, s) for s in seeds]
        if count == 5:
            assert len(set(texts)) == 5
            assert len({len(text) for text in texts}) > 1  # the rows' texts end at different lengths


def test_expand_batch_rows_equal_generate_reference(engine, model_dir):
    seeds = [5, 6, 2**32 - 1]
    prompt_ids = engine.encode("a house,")
    rows = engine.sample_tokens_batch(prompt_ids, max_new_tokens_for(len(prompt_ids)), seeds)
    assert rows == [reference_generate(engine.model, model_dir, prompt_ids, seed) for seed in seeds]


def test_expand_batch_prompt_lengths_and_edge_cases(engine):
    near_full = "kaka" + " kaka" * 72  # 74 tokens with the comma: one new token per row
    assert len(engine.encode(near_full + ",")) == 74
    full = "kaka" + " kaka" * 73
    too_long = " ".join(["the cat"] * 130)
    for prompt in (near_full, "dog " * 40, full, too_long, ""):
        seeds = [11, 12, 13, 14, 15]
        assert engine.expand_batch(prompt, seeds) == [engine.expand(prompt, s) for s in seeds]
    assert engine.expand_batch("a house", []) == []


def test_expand_batch_computes_equal_seeds_once(engine, monkeypatch):
    calls = []
    original = engine.sample_tokens_batch

    def recording(prompt_ids, new_tokens, seeds):
        calls.append(list(seeds))
        return original(prompt_ids, new_tokens, seeds)

    monkeypatch.setattr(engine, "sample_tokens_batch", recording)
    texts = engine.expand_batch("a house", [5, 7, 5 + 2**32, 5])
    assert calls == [[5, 7]]
    assert texts[0] == texts[2] == texts[3] == engine.expand("a house", 5)
    assert texts[1] == engine.expand("a house", 7) != texts[0]


# ---- the float32 decoder ----------------------------------------------------------------------------


def test_decoder_hidden_states_equal_the_model_forward(engine):
    """Our decoder (prompt once for every row, preallocated cache) against the model's own forward over
    each row's whole sequence, to float32 rounding."""
    from lib_fooocus.expansion.decoder import Gpt2Decoder

    _hidden_states_against_forward(engine, engine.model, Gpt2Decoder(engine.model))


def test_decoder_only_for_the_plain_gpt2_block(engine, exact_engine):
    import copy

    from lib_fooocus.expansion import decoder

    assert decoder.supports(engine.model)
    assert engine._decoder is not None
    assert exact_engine._decoder is None  # the exact path runs the model's own forward
    for name, value in [("scale_attn_by_inverse_layer_idx", True), ("reorder_and_upcast_attn", True),
                        ("activation_function", "relu"), ("scale_attn_weights", False)]:
        variant = copy.copy(engine.model)
        variant.config = copy.deepcopy(engine.model.config)
        setattr(variant.config, name, value)
        assert not decoder.supports(variant), name


# ---- several rows: oneDNN-packed weights -------------------------------------------------------------


@pytest.fixture(scope="module")
def lively_model(engine):
    """The test model with non-zero biases and O(1) MLP activations (a freshly initialised GPT-2 has zero
    biases and tiny activations, where a dropped bias or another GELU would not show)."""
    import copy

    model = copy.deepcopy(engine.model)
    generator = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, parameter in model.transformer.h.named_parameters():
            if name.endswith("bias"):
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
            elif name.endswith("mlp.c_fc.weight"):
                parameter.mul_(40.0)
    return model


def _hidden_states_against_forward(engine, model, decoder):
    prompt_ids = engine.encode("a photo of the cat,")
    rows_tokens = [[5, 17, 9], [40, 2, 33], [7, 7, 1]]
    with torch.inference_mode():
        prompt_state = decoder.prefill(prompt_ids, rows=3, total=len(prompt_ids) + 3)
        states = [decoder.step(torch.tensor([row[i] for row in rows_tokens])) for i in range(3)]
        decoder.release()
        for row, tokens in enumerate(rows_tokens):
            full = model.transformer(input_ids=torch.tensor([prompt_ids + tokens])).last_hidden_state[0]
            torch.testing.assert_close(prompt_state[0], full[len(prompt_ids) - 1], atol=1e-5, rtol=1e-5)
            for i, state in enumerate(states):
                torch.testing.assert_close(state[row], full[len(prompt_ids) + i], atol=1e-5, rtol=1e-5)


def test_several_rows_use_packed_weights_built_once_and_equal_to_the_forward(engine, lively_model, monkeypatch):
    from lib_fooocus.expansion import decoder as gpt2_decoder

    built = []
    original = gpt2_decoder.PackedWeights.build.__func__
    monkeypatch.setattr(gpt2_decoder.PackedWeights, "build",
                        classmethod(lambda cls, layers, rows: built.append(rows) or original(cls, layers, rows)))
    decoder = gpt2_decoder.Gpt2Decoder(lively_model)
    with torch.inference_mode():
        decoder.prefill(engine.encode("a cat,"), rows=1, total=8)
        decoder.step(torch.tensor([5]))
    assert built == [] and decoder._packed is None  # one row never packs
    _hidden_states_against_forward(engine, lively_model, decoder)
    assert built == [3] and decoder._packed is not None  # this torch packs (oneDNN on the CPU)
    assert len(decoder._packed.packed) == len(decoder.layers)
    products = []
    original_product = gpt2_decoder.PackedWeights.product
    monkeypatch.setattr(gpt2_decoder.PackedWeights, "product",
                        lambda self, bias, x, weight: products.append(len(x)) or original_product(self, bias, x, weight))
    _hidden_states_against_forward(engine, lively_model, decoder)
    assert built == [3]  # reused, not packed again
    assert products == [3] * (4 * len(decoder.layers) * 3)  # every product of the 3 steps, none in the prompt


def test_packed_weights_that_disagree_are_not_used(lively_model, monkeypatch):
    from lib_fooocus.expansion import decoder as gpt2_decoder

    # a product that forgets x @ weight (a wrong layout would be as far off)
    monkeypatch.setattr(gpt2_decoder.PackedWeights, "product", lambda self, bias, x, weight: bias.expand(len(x), -1))
    assert gpt2_decoder.PackedWeights.build(gpt2_decoder.Gpt2Decoder(lively_model).layers, 4) is None


@pytest.mark.parametrize("missing", ["mkldnn", "ops"])
def test_batches_without_packing_keep_addmm_and_stay_exact(engine, lively_model, monkeypatch, missing):
    from lib_fooocus.expansion import decoder as gpt2_decoder

    if missing == "mkldnn":
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    else:  # an older or newer torch without the packing op under this name
        monkeypatch.setattr(torch.ops, "mkldnn", object())
    decoder = gpt2_decoder.Gpt2Decoder(lively_model)
    assert decoder.packed_weights(3) is None
    _hidden_states_against_forward(engine, lively_model, decoder)
