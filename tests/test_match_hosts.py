"""Match Fooocus host glue with fake A1111 / Forge SDXL models: the conditioning the host gets, the
fallback on host-only syntax, the caches, and that nothing stays behind."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from lib_fooocus.hosts.lifecycle import GenerationState
from lib_fooocus.hosts.match_encoding import (
    MATCH_NOTE_FALLBACK,
    FooocusImageRNG,
    MatchPrompts,
    host_text_encoders,
    install_prompt_encoding,
    private_cond_caches,
)
from lib_fooocus.match.noise import initial_noise
from lib_fooocus.match.prompt import encode_parts, encode_text
from lib_fooocus.match.syntax import PromptParts
from lib_fooocus.params import FooocusParams

L_WIDTH, G_WIDTH, SIZE_WIDTH = 3, 5, 4


class FakeEmbedder:
    """A hijacked sgm embedder (A1111) / Forge text engine: `tokenize` and `encode_with_transformers`."""

    def __init__(self, width: int, pooled: bool):
        self.width, self.pooled = width, pooled
        self.hijack = SimpleNamespace(fixes=["stale"])
        self.embeddings = SimpleNamespace(fixes=["stale"])
        self.seen_fixes: list = []

    def tokenize(self, texts):
        return [[(sum(map(ord, word)) % 90) + 3 for word in text.split()] for text in texts]

    def encode_with_transformers(self, tokens):
        self.seen_fixes.append((self.hijack.fixes, self.embeddings.fixes))
        ids = tokens.to(torch.float32).unsqueeze(-1)
        z = torch.cos(ids * torch.arange(1, self.width + 1) / 7.0)
        if self.pooled:
            z.pooled = z[:, 3, :] * 2
        return z


class FakeSdxl:
    def __init__(self, forge: bool):
        l_embedder, g_embedder = FakeEmbedder(L_WIDTH, False), FakeEmbedder(G_WIDTH, True)
        if forge:
            self.text_processing_engine_l, self.text_processing_engine_g = l_embedder, g_embedder
        else:
            self.conditioner = SimpleNamespace(embedders=[l_embedder, g_embedder, object()])
        self.calls: list[list[str]] = []

    def get_learned_conditioning(self, texts):
        self.calls.append(list(texts))
        n = len(texts)
        size = torch.arange(SIZE_WIDTH, dtype=torch.float32).repeat(n, 1) + 100
        return {"crossattn": torch.zeros(n, 77, L_WIDTH + G_WIDTH), "vector": torch.cat([torch.zeros(n, G_WIDTH), size], 1)}


class Texts(list):
    def __init__(self, items, negative=False):
        super().__init__(items)
        self.is_negative_prompt = negative


def make_p(forge: bool = False):
    return SimpleNamespace(sd_model=FakeSdxl(forge), extra_generation_params={}, cached_c=[None, None], cached_uc=[None, None])


def state_for(p):
    return GenerationState(p=p, params=FooocusParams(enabled=True, match_fooocus=True), host="test")


PARTS = PromptParts.of(["cinematic still of a (cat:1.2)", "extra line"], "expansion words")
NEGATIVE = PromptParts.of(["", "style negative"])


def planned() -> MatchPrompts:
    prompts = MatchPrompts()
    prompts.add("cinematic still of a (cat:1.2) BREAK extra line BREAK expansion words <lora:x:1>", PARTS, negative=False)
    prompts.add("style negative", NEGATIVE, negative=True)
    return prompts


def expected(model, parts):
    encoders = host_text_encoders(model)
    return encode_parts(parts.parts, parts.top_k, lambda text: encode_text(text, encoders))


def check_host(forge: bool) -> None:
    p = make_p(forge)
    model = p.sd_model
    state = state_for(p)
    shared_cache = p.cached_c
    hook = install_prompt_encoding(state, p, planned(), ["a (cat:1.2)"], embeddings=list)
    assert hook is not None
    assert p.cached_c is not shared_cache and p.cached_c == [None, None]  # never the shared cache
    cond = model.get_learned_conditioning(Texts(["cinematic still of a (cat:1.2) BREAK extra line BREAK expansion words "]))
    crossattn, pooled = expected(model, PARTS)
    assert torch.equal(cond["crossattn"], crossattn) and cond["crossattn"].shape == (1, 77 * 3, L_WIDTH + G_WIDTH)
    assert torch.equal(cond["vector"][:, :G_WIDTH], pooled)
    assert torch.equal(cond["vector"][:, G_WIDTH:], torch.arange(SIZE_WIDTH, dtype=torch.float32)[None] + 100)
    negative = model.get_learned_conditioning(Texts(["style negative"], negative=True))
    assert torch.equal(negative["crossattn"], expected(model, NEGATIVE)[0])  # '' encoded, never zeroed
    embedders = (model.text_processing_engine_l, model.text_processing_engine_g) if forge else model.conditioner.embedders[:2]
    assert all(fixes in ((None, ["stale"]), (["stale"], None)) for e in embedders for fixes in e.seen_fixes)
    # a text the plan does not know keeps the host's encoding
    other = model.get_learned_conditioning(Texts(["something else"]))
    assert torch.equal(other["crossattn"], torch.zeros(1, 77, L_WIDTH + G_WIDTH))
    state.finish()
    assert "get_learned_conditioning" not in vars(model)  # the class method again
    assert model.get_learned_conditioning(Texts(["style negative"], negative=True))["crossattn"].abs().sum() == 0


def test_a1111_sdxl_gets_fooocus_conditioning() -> None:
    check_host(forge=False)


def test_forge_main_sdxl_gets_fooocus_conditioning() -> None:
    check_host(forge=True)


def test_pooled_sum_is_over_the_basic_parts_only() -> None:
    p = make_p()
    model = p.sd_model
    encoders = host_text_encoders(model)
    singles = [encode_text(text, encoders)[1] for text in PARTS.parts]
    crossattn, pooled = expected(model, PARTS)
    torch.testing.assert_close(pooled, singles[0] + singles[1])


def test_host_only_syntax_falls_back_with_a_note_and_touches_nothing() -> None:
    p = make_p()
    state = state_for(p)
    cache = p.cached_c
    assert install_prompt_encoding(state, p, planned(), ["a [cat:dog:3] photo"], embeddings=list) is None
    assert "get_learned_conditioning" not in vars(p.sd_model) and p.cached_c is cache
    assert p.extra_generation_params["Fooocus note"] == f"{MATCH_NOTE_FALLBACK} (prompt editing [from:to:when] / [a|b])"
    p2 = make_p()
    assert install_prompt_encoding(state_for(p2), p2, planned(), ["a cat in myembed style"], embeddings=lambda: ["myembed"]) is None


def test_non_sdxl_model_falls_back() -> None:
    p = SimpleNamespace(sd_model=SimpleNamespace(get_learned_conditioning=lambda texts: None), extra_generation_params={})
    assert install_prompt_encoding(state_for(p), p, planned(), ["a cat"], embeddings=list) is None
    assert "not an SDXL model" in p.extra_generation_params["Fooocus note"]


def test_stale_hook_of_a_failed_generation_is_replaced() -> None:
    p = make_p()
    model = p.sd_model
    install_prompt_encoding(state_for(p), p, planned(), ["a"], embeddings=list)
    second = install_prompt_encoding(state_for(p), p, MatchPrompts(), ["a"], embeddings=list)
    assert second is not None and second.original.__func__ is FakeSdxl.get_learned_conditioning
    second.remove()
    assert "get_learned_conditioning" not in vars(model)


def test_private_cond_caches_keep_the_host_lengths() -> None:
    p = SimpleNamespace(cached_c=[1, 2, 3], cached_uc=[1, 2], cached_hr_c=None)
    private_cond_caches(p)
    assert p.cached_c == [None] * 3 and p.cached_uc == [None] * 2 and p.cached_hr_c is None


def test_fooocus_image_rng_is_fooocus_initial_noise_then_goes_on_per_seed() -> None:
    rng = FooocusImageRNG((4, 8, 8), [5, 6], torch.device("cpu"))
    assert torch.equal(rng.next(), initial_noise([5, 6], (4, 8, 8)))
    generator = torch.Generator().manual_seed(6)
    torch.randn((1, 4, 8, 8), generator=generator)
    assert torch.equal(rng.next()[1:], torch.randn((1, 4, 8, 8), generator=generator))


# -- the parts the generation plans ------------------------------------------------------------------


def test_rewrite_records_fooocus_parts_per_image_and_match_off_records_none() -> None:
    from lib_fooocus.styles.library import StyleLibrary
    from lib_fooocus.webui.generation import rewrite_prompts

    library = StyleLibrary.from_styles([
        {"name": "Sharp", "prompt": "cinematic still {prompt} . crisp", "negative_prompt": "blurry"},
        {"name": "Enhance", "prompt": "", "negative_prompt": "low quality"},
    ])

    def make():
        return SimpleNamespace(all_prompts=["a cat <lora:x:1>\nwearing a hat", "a dog"], all_negative_prompts=["", ""],
                               all_seeds=[5, 6], batch_size=1)

    p = make()
    params = FooocusParams(enabled=True, match_fooocus=True, styles=("Sharp", "Enhance"), expansion=True)
    rewrite = rewrite_prompts(p, params, library, lambda text, seed: f"{text} exp{seed}")
    by_text = {text: (parts, negative) for text, parts, negative in rewrite.match_parts}
    parts, negative = by_text[p.all_prompts[0]]
    assert negative is False
    assert parts == PromptParts(("cinematic still a cat . crisp", "wearing a hat", "a cat exp5"), 2)
    neg_parts, negative = by_text[p.all_negative_prompts[0]]
    assert negative is True and neg_parts == PromptParts(("blurry", "low quality"), 2)
    assert by_text[p.all_prompts[1]][0] == PromptParts(("cinematic still a dog . crisp", "a dog exp6"), 1)
    # match on without styles: the lines are the parts, an empty negative is one '' part
    p = make()
    rewrite = rewrite_prompts(p, FooocusParams(enabled=True, match_fooocus=True), library, None)
    assert (p.all_prompts[0], PromptParts(("a cat", "wearing a hat"), 2), False) in rewrite.match_parts
    assert ("", PromptParts(("",), 1), True) in rewrite.match_parts
    # match off and nothing to rewrite: the prompts stay the user's
    p = make()
    assert rewrite_prompts(p, FooocusParams(enabled=True), library, None) is None
    assert p.all_prompts[0] == "a cat <lora:x:1>\nwearing a hat"


def test_a1111_schedule_gets_fooocus_table_and_integer_timesteps() -> None:
    from lib_fooocus.guidance.schedule import sdxl_sigmas
    from lib_fooocus.hosts.match_encoding import fooocus_schedule_for

    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1 - betas, 0).float()  # A1111: ᾱ cast to float32 before σ
    host_table = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
    wrap = SimpleNamespace(sigmas=host_table, log_sigmas=host_table.log(), quantize=False)
    assert not torch.equal(host_table, sdxl_sigmas())
    assert fooocus_schedule_for(wrap)
    assert torch.equal(wrap.sigmas, sdxl_sigmas()) and wrap.quantize is True
    torch.testing.assert_close(wrap.log_sigmas, sdxl_sigmas().log())
    other = SimpleNamespace(sigmas=host_table * 2, log_sigmas=None, quantize=False)  # not this schedule
    assert not fooocus_schedule_for(other) and other.quantize is False


# -- sampling: noise and schedule, installed for one sampling and undone ------------------------------


def fake_host_modules(monkeypatch):
    import sys
    import types

    class Sampler:
        def create_noise_sampler(self, x, sigmas, p):
            return "host tree"

    class KDiffusionSampler(Sampler):
        def get_sigmas(self, p, steps):
            return "host sigmas"

    modules = types.ModuleType("modules")
    shared = types.ModuleType("modules.shared")
    shared.opts = SimpleNamespace(data={"sgm_noise_multiplier": False}, sgm_noise_multiplier=False)
    shared.device = torch.device("cpu")
    common = types.ModuleType("modules.sd_samplers_common")
    common.Sampler = Sampler
    kdiffusion = types.ModuleType("modules.sd_samplers_kdiffusion")
    kdiffusion.KDiffusionSampler = KDiffusionSampler
    modules.shared, modules.sd_samplers_common, modules.sd_samplers_kdiffusion = shared, common, kdiffusion
    for name, module in (("modules", modules), ("modules.shared", shared), ("modules.sd_samplers_common", common),
                         ("modules.sd_samplers_kdiffusion", kdiffusion)):
        monkeypatch.setitem(sys.modules, name, module)
    return shared, Sampler, KDiffusionSampler


def test_sampling_gets_fooocus_noise_and_everything_is_undone(monkeypatch) -> None:
    import pytest

    pytest.importorskip("torchsde")
    from lib_fooocus.hosts.match_encoding import install_noise
    from lib_fooocus.match.noise import BrownianNoise

    shared, sampler_class, kdiffusion_class = fake_host_modules(monkeypatch)
    host_rng = SimpleNamespace(shape=(4, 8, 8), seeds=[21, 22], next=lambda: "host noise")
    p = SimpleNamespace(rng=host_rng, subseed_strength=0, seed_resize_from_h=0, all_seeds=[1, 2, 21, 22],
                        iteration=1, batch_size=2, extra_generation_params={})
    other_p = SimpleNamespace()
    state = state_for(p)
    undo = install_noise(state, p)
    assert torch.equal(p.rng.next(), initial_noise([21, 22], (4, 8, 8)))
    assert shared.opts.data["sgm_noise_multiplier"] is True  # √(1+σ₀²) as Fooocus
    sampler = kdiffusion_class()
    tree = sampler.create_noise_sampler(torch.zeros(2, 4, 8, 8), torch.tensor([14.6, 2.0, 0.03, 0.0]), p)
    assert isinstance(tree, BrownianNoise) and len(tree.trees) == 2
    one = BrownianNoise(torch.zeros(1, 4, 8, 8), torch.tensor(0.03), torch.tensor(14.6), [22])
    torch.testing.assert_close(tree(torch.tensor(14.6), torch.tensor(2.0))[1:], one(torch.tensor(14.6), torch.tensor(2.0)))
    assert sampler.create_noise_sampler(None, None, other_p) == "host tree"  # another job's sampler: the host's
    assert sampler.get_sigmas(p, 4) == "host sigmas"  # the host's schedule, computed through the wrap
    p.extra_generation_params["SGM noise multiplier"] = True
    while undo:
        undo.pop()()
    assert p.rng is host_rng and shared.opts.data["sgm_noise_multiplier"] is False
    assert "SGM noise multiplier" not in p.extra_generation_params
    assert sampler_class.create_noise_sampler(sampler, None, None, p) == "host tree"
    assert kdiffusion_class.get_sigmas(sampler, p, 4) == "host sigmas"
    assert "create_noise_sampler" not in vars(kdiffusion_class)


def test_variation_seeds_keep_the_host_noise(monkeypatch) -> None:
    from lib_fooocus.hosts.match_encoding import replace_rng

    fake_host_modules(monkeypatch)
    host_rng = SimpleNamespace(shape=(4, 8, 8), seeds=[1], next=lambda: "host noise")
    p = SimpleNamespace(rng=host_rng, subseed_strength=0.3, extra_generation_params={})
    assert replace_rng(state_for(p), p) is None and p.rng is host_rng
    assert "variation seed" in p.extra_generation_params["Fooocus note"]


def test_match_parts_are_fooocus_workloads_and_pool_counts() -> None:
    """Fooocus's own process_prompt output (tests/data/fooocus_parity/workloads.json): the parts Match
    Fooocus encodes, their order, the expansion last and outside the pooled sum."""
    import json
    from pathlib import Path

    from lib_fooocus.styles.library import StyleLibrary
    from lib_fooocus.webui.generation import rewrite_prompts

    data = Path(__file__).parent / "data" / "fooocus_parity"
    library = StyleLibrary.load([Path(__file__).parent / "parity" / "styles"])
    cases = json.loads((data / "workloads.json").read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 10
    for case in cases:
        expansion = "Fooocus V2" in case["styles"]
        fooocus_expansion = case["positive_workloads"][-1] if expansion and case["prompt"].strip() else ""
        p = SimpleNamespace(all_prompts=[case["prompt"]], all_negative_prompts=[case["negative"]], all_seeds=[case["seed"]],
                            batch_size=1)
        params = FooocusParams(enabled=True, match_fooocus=True, styles=tuple(case["styles"]))
        rewrite = rewrite_prompts(p, params, library, lambda text, seed, e=fooocus_expansion: e)
        (_, positive, _), (_, negative, _) = rewrite.match_parts
        assert positive == PromptParts(tuple(case["positive_workloads"]), case["positive_pool_count"]), case["name"]
        assert negative == PromptParts(tuple(case["negative_workloads"]), case["negative_pool_count"]), case["name"]
        # each part its own 77-token chunk(s): one per short part, more for a long expansion
        assert case["positive_crossattn_shape"][1] >= 77 * len(positive.parts)
        assert case["negative_crossattn_shape"][1] == 77 * len(negative.parts)
