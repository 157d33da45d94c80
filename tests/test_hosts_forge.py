"""Forge adapter (main `backend/` line and the early-2024 `ldm_patched` line) against the harness."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch
from harness import A1111Host, ScriptStandIn, generate, registered_count, spy_filter_methods, start, toy
from harness.expect import emphasized, forge_expected
from harness.forge_host import ForgeHost, post_cfg_functions, unet_in_use

from lib_fooocus.guidance.sharpness import sharpen_positive_eps
from lib_fooocus.hosts.forge import HOOK_MARK, MARKER_KEY
from lib_fooocus.hosts.lifecycle import STATE_ATTRIBUTE
from lib_fooocus.params import FooocusParams

STRONG = FooocusParams(enabled=True, sharpness=20.0, adaptive_cfg=5.0)
LINES = ["forge-main", "forge-classic"]


def assert_fooocus_result(host, params, records=None, atol=1e-6):
    records = host.records if records is None else records
    assert records
    for record in records:
        expected = forge_expected(record, params, host.shared.sd_model.sigmas)
        assert torch.allclose(record["denoised"], expected, atol=atol, rtol=1e-6), record["step"]
        assert not torch.allclose(expected, record["host_result"], atol=1e-3), "the tricks must change this call"


@pytest.mark.parametrize("method", ["shift", "batched"])
def test_the_filter_setting_reaches_the_filter(monkeypatch, method):
    host = ForgeHost("forge-main")
    adapter = start(host, monkeypatch)
    seen = spy_filter_methods(monkeypatch)
    generate(host, adapter, STRONG, filter_method=method, cfg_scale=9.0)
    assert seen and set(seen) == {method}
    assert_fooocus_result(host, STRONG)


def ours(functions):
    return [f for f in functions if hasattr(f, HOOK_MARK)]


# -- detection ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
def test_detects_each_forge_line_by_its_modules(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    assert adapter.name == line


def test_detects_a1111_without_forge_modules(monkeypatch):
    assert start(A1111Host(), monkeypatch).name == "a1111"


def test_detection_happens_at_first_call_not_at_import(monkeypatch):
    from lib_fooocus.webui.context import FooocusContext

    context = FooocusContext()
    ForgeHost("forge-classic").install(monkeypatch)
    assert context.adapter().name == "forge-classic"
    ForgeHost("forge-main").install(monkeypatch)
    assert context.adapter().name == "forge-classic"  # kept for the life of the context
    assert FooocusContext().adapter().name == "forge-main"
    assert "lib_fooocus.hosts.forge" in sys.modules


# -- the CFG math ------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("batch_size", [1, 2])
def test_every_call_gives_fooocus_cfg(monkeypatch, line, batch_size):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    _, p = generate(host, adapter, STRONG, cfg_scale=9.0, batch_size=batch_size, sampler_name="DPM++ 2M")
    assert host.errors == []
    assert_fooocus_result(host, STRONG)
    unet = host.records[0]["unet"]
    assert len(ours(post_cfg_functions(unet))) == 1
    assert unet.model_options[MARKER_KEY]
    assert registered_count(host.script_callbacks) == 0
    assert "sample" not in vars(p)
    # only clones are patched: the copy Forge restores before each sampling never is
    assert MARKER_KEY not in host.shared.sd_model.forge_objects_after_applying_lora.unet.model_options


@pytest.mark.parametrize("line", LINES)
def test_negative_adm_on_the_conditioning_path(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    generate(host, adapter, FooocusParams(enabled=True), cfg_scale=5.0, steps=8, width=64, height=96)
    unet, table = host.shared.sd_model.unet, host.shared.sd_model.sigmas
    cond = toy.encode("a cat", "sdxl", 64, 96)["vector"][:1280]
    uncond = toy.encode("blurry", "sdxl", 64, 96)["vector"][:1280]
    # Forge runs cond and uncond as separate UNet calls of B rows each: cond, uncond, cond, ...
    states = set()
    for k, (vector, sigma) in enumerate(zip(unet.seen_vectors, unet.seen_sigmas)):
        emph = emphasized(float(sigma[0]), table, 0.3)
        states.add(emph)
        want = toy.reference_adm(cond if k % 2 == 0 else uncond, 64, 96, 1.5 if k % 2 == 0 else 0.8, emph)
        assert torch.allclose(vector[0], want, atol=5e-4)
    assert states == {True, False}


@pytest.mark.parametrize("line", LINES)
def test_disabled_is_bit_identical_and_touches_nothing(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    lora_unet = host.shared.sd_model.forge_objects_after_applying_lora.unet
    off, p = generate(host, adapter, FooocusParams(enabled=False, sharpness=30.0), cfg_scale=9.0, enable_hr=True, batch_size=2)
    assert all(r["unet"] is lora_unet for r in host.records)
    host.records.clear()
    base, _ = generate(host, adapter, None, cfg_scale=9.0, enable_hr=True, batch_size=2)
    assert torch.equal(off, base)
    assert lora_unet.model_options == {"transformer_options": {}}
    assert p.extra_generation_params == {}
    assert "sample" not in vars(p)


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("prompt", ["a cat AND a hat:0.5", "a cat:0.6 AND a hat:0.4"])
def test_and_prompts_keep_each_lines_semantics(monkeypatch, line, prompt):
    from lib_fooocus.guidance.cfg import fooocus_cfg

    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0, batch_size=2, prompt=prompt)
    table = host.shared.sd_model.sigmas
    for record in host.records:
        u, scale = record["uncond_pred"], record["scale"]
        effective = u + (record["host_result"] - u) / scale  # what plain CFG used as the positive
        expected = fooocus_cfg(record["x"], effective, u, record["sigma"], scale, STRONG, toy.reference_progress(record["sigma"], table))
        assert torch.allclose(record["denoised"], expected, atol=1e-5)


def test_inpainting_mask_still_blends(monkeypatch):
    host = ForgeHost("forge-main")
    adapter = start(host, monkeypatch)
    init = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0
    generate(host, adapter, STRONG, cfg_scale=9.0, init_latent=init, mask=mask, denoising_strength=0.7)
    table = host.shared.sd_model.sigmas
    for record in host.records:
        expected = forge_expected(record, STRONG, table) * (1 - mask) + init * mask
        assert torch.allclose(record["denoised"], expected, atol=1e-6)


# -- passes, CFG 1, refiner ------------------------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
def test_hires_pass_idempotent_install(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0, enable_hr=True)
    assert_fooocus_result(host, STRONG)
    hires = [r for r in host.records if r["x"].shape[-1] == 16]
    assert hires
    assert all(len(ours(post_cfg_functions(r["unet"]))) == 1 for r in host.records)
    assert all(len(ours(r["unet"].model_options["conditioning_modifiers"])) == 1 for r in host.records)


@pytest.mark.parametrize("line", LINES)
def test_double_before_sampling_installs_once(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    p = host.processing()
    seen = []

    def sample(*args, **kwargs):
        adapter.before_sampling(p, STRONG)
        first = unet_in_use(host)
        adapter.before_sampling(p, STRONG)
        seen.append((first, unet_in_use(host), len(ours(post_cfg_functions(first)))))

    p.sample = sample
    adapter.begin_generation(p, STRONG)
    p.sample()
    (first, second, hooks), = seen
    assert second is first and hooks == 1
    adapter.end_generation(p)


@pytest.mark.parametrize("line", LINES)
def test_process_batch_outside_sampling_clones_nothing(monkeypatch, line):
    """Forge resets forge_objects in sample() after process_batch: a clone made there is discarded."""
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    p = host.processing()
    p.sample = lambda *a, **k: None
    before = unet_in_use(host)
    adapter.begin_generation(p, STRONG)
    adapter.before_sampling(p, STRONG)  # what process_batch does
    assert unet_in_use(host) is before
    assert MARKER_KEY not in before.model_options
    adapter.end_generation(p)


def test_forge_main_hires_pass_twice_and_hr_cfg_one(monkeypatch):
    host = ForgeHost("forge-main")
    adapter = start(host, monkeypatch)
    script = ScriptStandIn(adapter, STRONG)
    p = host.processing(cfg_scale=9.0, enable_hr=True, hr_cfg=1.0)
    host.process_images(p, script)
    assert script.calls.count("process_before_every_sampling") == 3  # 1 + 2 in the hires pass
    hires = [r for r in host.records if r["x"].shape[-1] == 16]
    for record in hires:  # hr_cfg 1 → Forge skips the uncond; Fooocus keeps the host's result
        assert not record["uncond_evaluated"]
        assert torch.equal(record["denoised"], record["host_result"])
    assert_fooocus_result(host, STRONG, records=[r for r in host.records if r["x"].shape[-1] == 8])


@pytest.mark.parametrize("line", LINES)
def test_apply_in_hires_off(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    params = STRONG.replace(apply_in_hires=False)
    generate(host, adapter, params, cfg_scale=9.0, enable_hr=True, width=72)
    first = [r for r in host.records if r["x"].shape[-1] == 9]
    hires = [r for r in host.records if r["x"].shape[-1] == 18]
    assert_fooocus_result(host, params, records=first)
    for record in hires:
        assert MARKER_KEY not in record["unet"].model_options
        assert torch.equal(record["denoised"], record["host_result"])
    original = toy.encode("a cat", "sdxl", 144, 128)["vector"]
    unet = host.shared.sd_model.unet
    assert torch.equal(unet.seen_vectors[-2][0], original)


@pytest.mark.parametrize("line", LINES)
def test_cfg_one_skips_uncond_and_keeps_host_result(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    out, _ = generate(host, adapter, FooocusParams(enabled=True, sharpness=30.0, adm_scaler_end=0.0), cfg_scale=1.0)
    for record in host.records:
        assert not record["uncond_evaluated"]
        assert torch.equal(record["denoised"], record["host_result"])


def test_skip_early_cfg_steps_keep_host_result(monkeypatch):
    host = ForgeHost("forge-main")
    host.opts.skip_early_cond = 0.5
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0)
    skipped = [r for r in host.records if not r["uncond_evaluated"]]
    assert skipped
    for record in skipped:
        assert torch.equal(record["denoised"], record["host_result"])
    assert_fooocus_result(host, STRONG, records=[r for r in host.records if r["uncond_evaluated"]])


@pytest.mark.parametrize("line", LINES)
def test_refiner_switch_reinstalls_and_skips_adm(monkeypatch, caplog, line):
    host = ForgeHost(line, refiner_switch_step=2)
    adapter = start(host, monkeypatch)
    with caplog.at_level(logging.WARNING):
        generate(host, adapter, STRONG, cfg_scale=9.0)
    after = [r for r in host.records if r["step"] >= 2]
    assert after
    assert all(r["unet"].model is host.refiner.forge_objects.unet.model for r in after)
    assert all(len(ours(post_cfg_functions(r["unet"]))) == 1 for r in after)
    assert_fooocus_result(host, STRONG)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("re-installed" in m for m in messages) == 1
    assert sum("negative ADM not applied" in m for m in messages) == 1
    original = toy.encode("a cat", "refiner", 64, 64)["vector"]
    assert torch.equal(host.refiner.unet.seen_vectors[0][0], original)


# -- coexistence with other CFG users --------------------------------------------------------------


CFG_ARGS_SEEN: list[frozenset] = []
CFG_FUNCTION_KEYS = {"cond", "uncond", "cond_scale", "timestep", "input", "sigma", "cond_denoised", "uncond_denoised", "model", "model_options"}


def clamp_cfg(args):
    """A Dynamic-Thresholding-like cfg function: plain CFG on the given inputs, then a clamp."""
    CFG_ARGS_SEEN.append(frozenset(args))
    x = args["input"]
    cond, uncond = x - args["cond"], x - args["uncond"]
    result = (uncond + (cond - uncond) * args["cond_scale"]).clamp(-3.0, 3.0)
    return x - result


class OtherScript(ScriptStandIn):
    """Another extension patching the UNet in its own process_before_every_sampling."""

    def __init__(self, inner, patch):
        super().__init__(inner.adapter, inner.params)
        self.inner, self.patch = inner, patch
        self.before = True

    def process(self, p):
        self.inner.process(p)

    def process_batch(self, p):
        self.inner.process_batch(p)

    def postprocess(self, p):
        self.inner.postprocess(p)

    def before_hr(self, p):
        self.inner.before_hr(p)

    def process_before_every_sampling(self, p, **kwargs):
        if self.before:
            self._patch(p)
        self.inner.process_before_every_sampling(p, **kwargs)
        if not self.before:
            self._patch(p)

    def _patch(self, p):
        unet = p.sd_model.forge_objects.unet.clone()
        self.patch(unet)
        p.sd_model.forge_objects.unet = unet


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("other_first", [True, False])
def test_chains_with_another_cfg_function(monkeypatch, caplog, line, other_first):
    from lib_fooocus.guidance.cfg import effective_cfg_scale

    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    script = OtherScript(ScriptStandIn(adapter, STRONG), lambda unet: unet.set_model_sampler_cfg_function(clamp_cfg))
    script.before = other_first
    p = host.processing(cfg_scale=9.0)
    CFG_ARGS_SEEN.clear()
    with caplog.at_level(logging.WARNING):
        host.process_images(p, script)
    assert set(CFG_ARGS_SEEN) == {frozenset(CFG_FUNCTION_KEYS)}  # the host's calls and ours alike
    assert len(CFG_ARGS_SEEN) == 2 * len(host.records)
    table = host.shared.sd_model.sigmas
    for record in host.records:
        x, c, u = record["x"], record["cond_pred"], record["uncond_pred"]
        progress = toy.reference_progress(record["sigma"], table)
        eps = sharpen_positive_eps(x - c, c, STRONG.sharpness, progress)
        scale = float(effective_cfg_scale(9.0, STRONG.adaptive_cfg, progress)[0])
        expected = x - clamp_cfg({"input": x, "cond": eps, "uncond": x - u, "cond_scale": scale})
        assert torch.allclose(record["denoised"], expected, atol=1e-6)
        assert record["denoised"].abs().max() <= 3.0 + 1e-6  # the other function's clamp still applies
    assert "chained with clamp_cfg" in p.extra_generation_params["Fooocus note"]
    assert sum("another CFG function" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("other_first", [True, False])
def test_other_post_cfg_functions_act_on_fooocus_result(monkeypatch, other_first):
    host = ForgeHost("forge-main")
    adapter = start(host, monkeypatch)

    def sag_like(args):
        return args["denoised"] + 0.01 * (args["input"] - args["uncond_denoised"])

    script = OtherScript(ScriptStandIn(adapter, STRONG), lambda unet: unet.set_model_sampler_post_cfg_function(sag_like))
    script.before = other_first
    host.process_images(host.processing(cfg_scale=9.0), script)
    table = host.shared.sd_model.sigmas
    for record in host.records:
        chain = post_cfg_functions(record["unet"])
        assert hasattr(chain[0], HOOK_MARK)
        assert sag_like in chain
        expected = forge_expected(record, STRONG, table) + 0.01 * (record["x"] - record["uncond_pred"])
        assert torch.allclose(record["denoised"], expected, atol=1e-6)


# -- cleanup ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("line", LINES)
def test_cleanup_after_exception(monkeypatch, line):
    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    unet = host.shared.sd_model.unet
    original_eps = unet.eps
    calls = []

    def eps(*args):
        calls.append(registered_count(host.script_callbacks))
        if len(calls) == 3:
            raise RuntimeError("boom")
        return original_eps(*args)

    unet.eps = eps
    p = host.processing(cfg_scale=9.0)
    with pytest.raises(RuntimeError):
        host.process_images(p, ScriptStandIn(adapter, STRONG))
    assert calls[0] == 1
    assert registered_count(host.script_callbacks) == 0
    assert "sample" not in vars(p)
    assert STATE_ATTRIBUTE not in vars(p)


def test_interrupt_leaves_nothing(monkeypatch):
    host = ForgeHost("forge-main")
    adapter = start(host, monkeypatch)

    def interrupt(params):
        if host.state.sampling_step >= 1:
            host.state.interrupted = True

    host.script_callbacks.on_cfg_after_cfg(interrupt)
    _, p = generate(host, adapter, STRONG, cfg_scale=9.0)
    assert registered_count(host.script_callbacks) == 1
    assert "sample" not in vars(p)


@pytest.mark.parametrize("line", LINES)
@pytest.mark.parametrize("fail", [False, True])
def test_host_unet_is_back_and_p_released_after_the_generation(monkeypatch, line, fail):
    """Forge resets forge_objects only at its next generation: until then our clone (and through its
    closures `p` with its images and latents) must not stay on the model."""
    import gc
    import weakref

    host = ForgeHost(line)
    adapter = start(host, monkeypatch)
    holder_unet = host.shared.sd_model.forge_objects_after_applying_lora.unet
    if fail:
        original_eps = host.shared.sd_model.unet.eps
        calls = []

        def eps(*args):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("boom")
            return original_eps(*args)

        host.shared.sd_model.unet.eps = eps
    p = host.processing(cfg_scale=9.0, enable_hr=True)
    script = ScriptStandIn(adapter, STRONG)
    if fail:
        with pytest.raises(RuntimeError):
            host.process_images(p, script)
        assert "postprocess" not in script.calls  # the host skips it: the sampling's finally must do it
    else:
        host.process_images(p, script)
    assert any(MARKER_KEY in r["unet"].model_options for r in host.records)  # the tricks were on
    assert unet_in_use(host) is holder_unet
    assert MARKER_KEY not in holder_unet.model_options
    # the host's records still hold our clones (as another extension's clone of ours could): inert, p-free
    ref = weakref.ref(p)
    del p
    gc.collect()
    assert ref() is None


def test_stale_hook_after_generation_is_inert(monkeypatch):
    """A patched clone kept by someone after the generation ended returns the host's result."""
    host = ForgeHost("forge-main")
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0)
    stale = ours(post_cfg_functions(host.records[0]["unet"]))[0]
    args = {"denoised": torch.ones(1, 4, 8, 8), "input": torch.zeros(1, 4, 8, 8), "cond_denoised": torch.zeros(1, 4, 8, 8),
            "uncond_denoised": torch.zeros(1, 4, 8, 8), "sigma": torch.ones(1), "cond": [], "uncond": [], "model": None,
            "model_options": {}}
    assert stale(args) is args["denoised"]
    assert types.FunctionType is type(stale)
