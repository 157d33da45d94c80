"""Match Fooocus, host-free core: checked against numbers Fooocus's own code produced
(tests/data/fooocus_parity/unit, made by tests/parity/make_unit_reference.py) and against naive
re-formulations of the rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lib_fooocus.match.noise import BrownianNoise, initial_noise, schedule_range
from lib_fooocus.match.prompt import (
    CLIP_G_SPEC,
    CLIP_L_SPEC,
    TextEncoder,
    TokenizerSpec,
    chunk_words,
    encode_parts,
    encode_text,
    encode_weighted,
    parse_emphasis,
    tokenize_with_weights,
)
from lib_fooocus.match.syntax import PromptParts, host_text_key, unsupported_syntax

UNIT = Path(os.environ.get("FOOOCUS_PARITY_DATA", Path(__file__).parent / "data" / "fooocus_parity")) / "unit"
# Forge main ships the SDXL CLIP tokenizer files; used when present (the same vocabulary Fooocus uses)
FORGE_TOKENIZER = Path("/root/hosts/forge/backend/huggingface/stabilityai/stable-diffusion-xl-base-1.0/tokenizer")


def load_json(name: str) -> dict:
    return json.loads((UNIT / name).read_text(encoding="utf-8"))


def load_tensors(name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(UNIT / name))


# -- emphasis ---------------------------------------------------------------------------------------


def test_emphasis_segments_equal_fooocus() -> None:
    entries = load_json("emphasis.json")["entries"]
    assert len(entries) > 20
    for entry in entries:
        got = [[segment, weight] for segment, weight in parse_emphasis(entry["text"])]
        assert got == entry["segments"], entry["text"]


@pytest.mark.skipif(not FORGE_TOKENIZER.is_dir(), reason="needs a CLIP tokenizer (Forge's bundled files)")
def test_sdxl_chunks_equal_fooocus_with_the_clip_tokenizer() -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(str(FORGE_TOKENIZER))

    def tokenize_word(word: str) -> list[int]:
        return tokenizer(word, add_special_tokens=False)["input_ids"]

    for entry in load_json("emphasis.json")["entries"]:
        for key, spec in (("clip_l", CLIP_L_SPEC), ("clip_g", CLIP_G_SPEC)):
            got = [[[token, weight] for token, weight in chunk] for chunk in tokenize_with_weights(entry["text"], tokenize_word, spec)]
            assert got == entry[key], (key, entry["text"])


def naive_chunks(words: list[list[tuple[int, float]]], spec: TokenizerSpec) -> list[list[tuple[int, float]]]:
    """The chunk rule written out differently: a flat stream of (token, weight, word) that is cut at
    75 tokens, moving the cut back to the start of a short word that would be broken."""
    stream = [(token, weight, index, len(tokens)) for index, tokens in enumerate(words) for token, weight in tokens]
    body = spec.length - 2
    chunks, start = [], 0
    while start < len(stream):
        end = min(start + body, len(stream))
        if end < len(stream) and stream[end][2] == stream[end - 1][2] and stream[end][3] < 8:
            word = stream[end][2]
            first = next(i for i in range(start, end) if stream[i][2] == word)
            if first > start:
                end = first
        piece = [(t, w) for t, w, _, _ in stream[start:end]]
        chunks.append([(spec.start, 1.0), *piece, (spec.end, 1.0)] + [(spec.pad, 1.0)] * (body - len(piece)))
        start = end
    if not chunks:
        chunks.append([(spec.start, 1.0), (spec.end, 1.0)] + [(spec.pad, 1.0)] * body)
    return chunks


@pytest.mark.parametrize("sizes", [
    [1] * 80,  # plain overflow into a second chunk
    [1] * 70 + [7, 3],  # a 7-token word that does not fit moves whole
    [1] * 70 + [8, 3],  # an 8-token word is split at the chunk end
    [1] * 75,  # exactly full
    [30, 30, 20, 9, 1],
    [],
])
def test_chunk_layout_follows_the_word_rules(sizes: list[int]) -> None:
    spec = TokenizerSpec(start=1, end=2, pad=0)
    words = [[(100 + i, 1.0 + 0.01 * (i % 3))] * size for i, size in enumerate(sizes)]
    got = chunk_words(words, spec)
    assert got == naive_chunks(words, spec)
    assert all(len(chunk) == 77 for chunk in got)


# -- weighted encoding on Fooocus's tiny CLIP -------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip():
    from transformers import CLIPTextConfig, CLIPTextModel

    meta = load_json("weighted_encoding.json")
    tensors = load_tensors("weighted_encoding.safetensors")
    fields = {k: v for k, v in meta["config"].items() if k not in ("architectures", "torch_dtype")}
    config = CLIPTextConfig(**fields, attn_implementation="eager")  # Fooocus's CLIP attention path
    model = CLIPTextModel(config).eval()
    state = {k.removeprefix("model/transformer."): v for k, v in tensors.items() if k.startswith("model/transformer.")}
    model.load_state_dict(state, strict=False)
    projection = tensors["model/text_projection"]

    def encode(token_lists: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            out = model(input_ids=torch.tensor(token_lists), output_hidden_states=True)
        return out.hidden_states[-2].float(), out.pooler_output.float() @ projection.float()

    return meta, tensors, encode


def test_weighted_encoding_equals_fooocus(tiny_clip) -> None:
    meta, tensors, encode = tiny_clip
    start, end = meta["special_tokens"]["start"], meta["special_tokens"]["end"]
    for case in meta["cases"]:
        spec = TokenizerSpec(start=start, end=end, pad=case["pad"], length=12)
        chunks = [[(int(t), float(w)) for t, w in chunk] for chunk in case["chunks"]]
        z, pooled = encode_weighted(chunks, encode, spec)
        key = case["key"]
        torch.testing.assert_close(z, tensors[f"{key}/z"], rtol=0, atol=0, msg=key)
        torch.testing.assert_close(pooled, tensors[f"{key}/pooled"], rtol=0, atol=0, msg=key)


def test_weighted_encoding_naive_formula() -> None:
    """Independent formulation on a linear 'encoder': z_j ← e_j + w_j(z_j − e_j), then the chunk mean restored."""
    spec = TokenizerSpec(start=1, end=2, pad=0, length=6)
    table = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))

    def encode(token_lists):
        z = table[torch.tensor(token_lists)] + torch.arange(6).reshape(1, 6, 1) * 0.1
        return z, z[:, 0]

    chunk = [(1, 1.0), (5, 1.3), (6, 0.7), (2, 1.0), (0, 1.0), (0, 1.0)]
    z, pooled = encode_weighted([chunk], encode, spec)
    raw, _ = encode([[t for t, _ in chunk]])
    empty, _ = encode([[1, 2, 0, 0, 0, 0]])
    expected = raw[0].clone()
    for j, (_, w) in enumerate(chunk):
        if w != 1.0:
            expected[j] = empty[0, j] + w * (raw[0, j] - empty[0, j])
    expected = expected * (raw[0].mean() / expected.mean())
    torch.testing.assert_close(z[0], expected)
    torch.testing.assert_close(pooled, raw[:1, 0])


def test_unweighted_chunks_are_the_plain_encoding() -> None:
    calls = []

    def encode(token_lists):
        calls.append(token_lists)
        return torch.ones(len(token_lists), 4, 2), torch.zeros(len(token_lists), 2)

    spec = TokenizerSpec(start=1, end=2, pad=0, length=4)
    encode_weighted([[(1, 1.0), (7, 1.0), (2, 1.0), (0, 1.0)]], encode, spec)
    assert calls == [[[1, 7, 2, 0]]]  # no empty sequence encoded without weights


# -- parts: concatenation and pooled sum ---------------------------------------------------------------


def fake_encoders(width_l: int = 3, width_g: int = 5) -> list[TextEncoder]:
    def tokenize_word(word: str) -> list[int]:
        return [sum(map(ord, word)) % 97 + 3] * (1 + len(word) // 6)

    def encoder(width: int, with_pooled: bool):
        def encode(token_lists):
            ids = torch.tensor(token_lists, dtype=torch.float32)
            z = torch.sin(ids.unsqueeze(-1) * torch.arange(1, width + 1)) + ids.unsqueeze(-1) / 1000
            pooled = z[:, :, :].mean(dim=1) if with_pooled else None
            return z, pooled

        return encode

    return [
        TextEncoder(tokenize_word, encoder(width_l, False), CLIP_L_SPEC),
        TextEncoder(tokenize_word, encoder(width_g, True), CLIP_G_SPEC),
    ]


def test_parts_are_concatenated_and_pooled_summed_over_top_k() -> None:
    encoders = fake_encoders()
    parts = PromptParts.of(["cinematic still of a (cat:1.2)", "a second style line", "extra line"], "expansion words")
    cond, pooled = encode_parts(parts.parts, parts.top_k, lambda text: encode_text(text, encoders))
    singles = [encode_text(text, encoders) for text in parts.parts]
    assert cond.shape == (1, 77 * 4, 8)
    torch.testing.assert_close(cond, torch.cat([z for z, _ in singles], dim=1))
    torch.testing.assert_close(pooled, singles[0][1] + singles[1][1] + singles[2][1])  # not the expansion's
    assert parts.top_k == 3


def test_crossattn_is_l_then_g_and_pooled_is_g() -> None:
    encoders = fake_encoders(3, 5)
    z, pooled = encode_text("a cat", encoders)
    chunks = tokenize_with_weights("a cat", encoders[0].tokenize_word, CLIP_G_SPEC)
    z_g, pooled_g = encoders[1].encode([[t for t, _ in chunks[0]]])
    torch.testing.assert_close(z[..., 3:], z_g)
    torch.testing.assert_close(pooled, pooled_g)


def test_empty_prompt_is_encoded_not_zeroed() -> None:
    encoders = fake_encoders()
    cond, pooled = encode_parts(PromptParts.of([""]).parts, 1, lambda text: encode_text(text, encoders))
    assert cond.abs().sum() > 0 and pooled.abs().sum() > 0
    with pytest.raises(ValueError, match="at least one part"):
        encode_parts([], 0, lambda text: encode_text(text, encoders))


# -- noise ------------------------------------------------------------------------------------------------


def test_initial_noise_equals_fooocus() -> None:
    meta = load_json("initial_noise.json")
    tensors = load_tensors("initial_noise.safetensors")
    for case in meta["cases"]:
        shape = case["shape"]
        got = initial_noise([case["seed"]], shape[1:])
        assert torch.equal(got, tensors[case["name"]]), case["name"]
    # a batch is each seed's own noise, whatever the batch
    seeds = [meta["cases"][0]["seed"], 7]
    batch = initial_noise(seeds, meta["cases"][0]["shape"][1:])
    assert torch.equal(batch[:1], tensors[meta["cases"][0]["name"]])


def test_brownian_noise_equals_fooocus() -> None:
    pytest.importorskip("torchsde")
    meta = load_json("brownian.json")
    tensors = load_tensors("brownian.safetensors")
    for case in meta["cases"]:
        latent = torch.zeros(case["shape"])
        noise = BrownianNoise(latent, case["sigma_min"], case["sigma_max"], [case["seed"]])
        for (sigma, sigma_next), key in zip(case["pairs"], case["keys"]):
            got = noise(torch.tensor(sigma, dtype=torch.float32), torch.tensor(sigma_next, dtype=torch.float32))
            torch.testing.assert_close(got, tensors[key], rtol=0, atol=0, msg=key)


def test_brownian_noise_batch_rows_are_each_seeds_tree() -> None:
    pytest.importorskip("torchsde")
    latent = torch.zeros(2, 4, 4, 4)
    both = BrownianNoise(latent, 0.03, 14.6, [11, 12])
    one = BrownianNoise(latent[1:], 0.03, 14.6, [12])
    a, b = torch.tensor(5.0), torch.tensor(2.0)
    torch.testing.assert_close(both(a, b)[1:], one(a, b), rtol=0, atol=0)
    with pytest.raises(ValueError, match="one seed per image"):
        BrownianNoise(latent, 0.03, 14.6, [1])


def test_schedule_range_skips_the_final_zero() -> None:
    low, high = schedule_range(torch.tensor([14.6, 3.0, 0.03, 0.0]))
    assert (float(low), float(high)) == pytest.approx((0.03, 14.6))


# -- syntax ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "reason"), [
    ("a [cat:dog:0.5] photo", "prompt editing"),
    ("a [cat|dog] photo", "prompt editing"),
    ("a cat AND a dog", "AND"),
    ("a cat BREAK a dog", "BREAK"),
    ("embedding:foo a cat", "embedding:name"),
    ("a cat in myembed style", "textual inversion myembed"),
])
def test_host_only_syntax_is_detected(text: str, reason: str) -> None:
    assert reason in (unsupported_syntax(text, ["myembed"]) or "")


@pytest.mark.parametrize("text", [
    "a (cat:1.3) <lora:offset:0.1>", "[cat]", "brand and android", "breakfast", "a \\[cat:dog\\]", "myembedding art",
])
def test_fooocus_syntax_is_accepted(text: str) -> None:
    assert unsupported_syntax(text, ["myembed"]) is None


def test_host_text_key_drops_network_tags() -> None:
    assert host_text_key("a cat BREAK style <lora:x:0.5> ") == host_text_key("a cat BREAK style")
