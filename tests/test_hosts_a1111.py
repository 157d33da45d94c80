"""A1111 adapter against the contract harness (A1111 1.6 – 1.10 behaviours, the callback contract of
`modules/script_callbacks.py` and `modules/sd_samplers_cfg_denoiser.py`)."""

from __future__ import annotations

import logging
import threading

import pytest
import torch
from harness import A1111Host, generate, registered_count, spy_filter_methods, start, toy
from harness.a1111_host import DictWithShape, ScriptStandIn
from harness.expect import a1111_expected, emphasized, plain_combine

from lib_fooocus.hosts.lifecycle import STATE_ATTRIBUTE
from lib_fooocus.params import FooocusParams

STRONG = FooocusParams(enabled=True, sharpness=20.0, adaptive_cfg=5.0)
VERSIONS = [(1, 6), (1, 7), (1, 8), (1, 9), (1, 10)]


def assert_fooocus_result(host, params, *, mask=None, init_latent=None, records=None, atol=2e-5):
    records = host.records if records is None else records
    table = host.shared.sd_model.sigmas
    assert records
    for record in records:
        expected = a1111_expected(record, params, table, mask=mask, init_latent=init_latent)
        plain = plain_combine(record["x_out"], record["conds_list"], record["scale"])
        assert torch.allclose(record["denoised"], expected, atol=atol, rtol=1e-5), record["step"]
        assert not torch.allclose(expected, plain, atol=1e-3), "the tricks must change this call"


def adm_log_lines(caplog):
    return [r for r in caplog.records if "negative ADM not applied" in r.getMessage()]


@pytest.mark.parametrize(("version", "sampler"), [(v, "Euler") for v in VERSIONS] + [((1, 10), "DPM++ 2M")])
def test_every_call_gives_fooocus_cfg(monkeypatch, version, sampler):
    host = A1111Host(version=version)
    adapter = start(host, monkeypatch)
    assert adapter.name == "a1111"
    _, p = generate(host, adapter, STRONG, cfg_scale=9.0, sampler_name=sampler)
    assert host.errors == []
    assert_fooocus_result(host, STRONG)
    assert registered_count(host.script_callbacks) == 0
    assert "sample" not in vars(p)
    assert STATE_ATTRIBUTE not in vars(p)


@pytest.mark.parametrize("method", ["shift", "batched"])
def test_the_filter_setting_reaches_the_filter(monkeypatch, method):
    host = A1111Host(version=(1, 10))
    adapter = start(host, monkeypatch)
    seen = spy_filter_methods(monkeypatch)
    generate(host, adapter, STRONG, filter_method=method, cfg_scale=9.0, batch_size=2)
    assert host.errors == []
    assert seen and set(seen) == {method}
    assert_fooocus_result(host, STRONG)


@pytest.mark.parametrize("version", [(1, 8), (1, 10)])
def test_callbacks_exist_only_while_sampling_and_use_name_when_supported(monkeypatch, version):
    host = A1111Host(version=version)
    adapter = start(host, monkeypatch)
    seen = []
    sc = host.script_callbacks
    sc.on_cfg_after_cfg(lambda params: seen.append([(k, e.name) for k, v in sc.callback_map.items() for e in v]))
    p = host.processing(cfg_scale=9.0)
    script = ScriptStandIn(adapter, STRONG)
    script.process(p)
    assert registered_count(sc) == 1  # begin_generation registers nothing
    host.process_images(p, script)
    expected_name = "fooocus_cfg_denoiser" if version >= (1, 9) else None
    assert ("cfg_denoiser", expected_name) in seen[0]
    assert ("cfg_denoised", expected_name if expected_name is None else "fooocus_cfg_denoised") in seen[0]
    assert registered_count(sc) == 1  # only the test's own callback is left


def test_negative_adm_vectors_swapped_by_sigma(monkeypatch):
    host = A1111Host()
    adapter = start(host, monkeypatch)
    params = FooocusParams(enabled=True, adm_scaler_end=0.3)
    generate(host, adapter, params, cfg_scale=5.0, steps=8, batch_size=2, width=64, height=96)
    unet, table = host.shared.sd_model.unet, host.shared.sd_model.sigmas
    cond = toy.encode("a cat", "sdxl", 64, 96)["vector"]
    uncond = toy.encode("blurry", "sdxl", 64, 96)["vector"]
    states = set()
    for vector, sigma in zip(unet.seen_vectors, unet.seen_sigmas):
        assert vector.shape == (4, 2816)  # [2 cond rows, 2 uncond rows]
        emph = emphasized(float(sigma[0]), table, 0.3)
        states.add(emph)
        want_c = toy.reference_adm(cond[:1280], 64, 96, 1.5, emph)
        want_u = toy.reference_adm(uncond[:1280], 64, 96, 0.8, emph)
        for row, want in ((0, want_c), (1, want_c), (2, want_u), (3, want_u)):
            assert torch.allclose(vector[row], want, atol=5e-4)
    assert states == {True, False}, "both the emphasized and the consistent window must occur"


def test_adm_selects_per_batch_row(monkeypatch):
    """Rows with different σ in one call get different halves (the per-row rule of timed_adm)."""
    host = A1111Host(version=(1, 10))
    adapter = start(host, monkeypatch)
    sc = host.script_callbacks
    p = host.processing(batch_size=2)
    rows = [toy.encode(t, "sdxl", 64, 64) for t in ("a", "b", "n", "n")]
    text_cond = DictWithShape({k: torch.stack([r[k] for r in rows[:2]]) for k in ("crossattn", "vector")}, None)
    text_uncond = DictWithShape({k: torch.stack([r[k] for r in rows[2:]]) for k in ("crossattn", "vector")}, None)
    sigma = torch.tensor([14.0, 0.05, 14.0, 0.05])

    def sample(*args, **kwargs):
        denoiser = type("D", (), {"p": p, "sampler": host.create_sampler("Euler"), "inner_model": None})()
        params = sc.CFGDenoiserParams(torch.zeros(4, 4, 8, 8), torch.zeros(4, 5, 1, 1), sigma, 0, 1, text_cond, text_uncond, denoiser)
        sc.cfg_denoiser_callback(params)
        return "done"

    p.sample = sample  # a pre-existing instance attribute must come back afterwards
    adapter.begin_generation(p, FooocusParams(enabled=True))
    assert p.sample() == "done"
    adapter.end_generation(p)
    assert p.sample is sample
    assert torch.allclose(text_cond["vector"][0], toy.reference_adm(rows[0]["vector"][:1280], 64, 64, 1.5, True), atol=5e-4)
    assert torch.allclose(text_cond["vector"][1], toy.reference_adm(rows[1]["vector"][:1280], 64, 64, 1.5, False), atol=5e-4)
    assert torch.allclose(text_uncond["vector"][0], toy.reference_adm(rows[2]["vector"][:1280], 64, 64, 0.8, True), atol=5e-4)
    assert torch.allclose(text_uncond["vector"][1], toy.reference_adm(rows[3]["vector"][:1280], 64, 64, 0.8, False), atol=5e-4)


def test_host_sigma_table_is_used(monkeypatch):
    """t(σ) comes from the model's own σ table: a host table twice the SDXL one moves the ADM switch."""
    host = A1111Host(sigma_scale=2.0)
    adapter = start(host, monkeypatch)
    generate(host, adapter, FooocusParams(enabled=True, sharpness=20.0, adaptive_cfg=5.0), cfg_scale=9.0, steps=8)
    table = host.shared.sd_model.sigmas
    assert_fooocus_result(host, FooocusParams(enabled=True, sharpness=20.0, adaptive_cfg=5.0))
    unet = host.shared.sd_model.unet
    cond = toy.encode("a cat", "sdxl", 64, 64)["vector"]
    for vector, sigma in zip(unet.seen_vectors, unet.seen_sigmas):
        want = toy.reference_adm(cond[:1280], 64, 64, 1.5, emphasized(float(sigma[0]), table, 0.3))
        assert torch.allclose(vector[0], want, atol=5e-4)


@pytest.mark.parametrize("version", [(1, 7), (1, 10)])
def test_disabled_is_bit_identical_and_registers_nothing(monkeypatch, version):
    host = A1111Host(version=version)
    adapter = start(host, monkeypatch)
    sc = host.script_callbacks
    counts = []
    sc.on_cfg_after_cfg(lambda params: counts.append(registered_count(sc)))
    off, p = generate(host, adapter, FooocusParams(enabled=False, sharpness=30.0), cfg_scale=9.0, enable_hr=True, batch_size=2)
    off_records = [r["denoised"] for r in host.records]
    host.records.clear()
    base, _ = generate(host, adapter, None, cfg_scale=9.0, enable_hr=True, batch_size=2)
    assert torch.equal(off, base)
    assert all(torch.equal(a, r["denoised"]) for a, r in zip(off_records, host.records))
    assert set(counts) == {1}
    assert "sample" not in vars(p)
    assert p.extra_generation_params == {}


def test_batch_of_two(monkeypatch):
    host = A1111Host()
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0, batch_size=2)
    assert host.records[0]["x_out"].shape[0] == 4
    assert_fooocus_result(host, STRONG)


@pytest.mark.parametrize("prompt", ["a cat AND a hat:0.5", "a cat:1 AND a hat:-1", "a cat:0.7 AND a hat:0.3 AND a dog:0.4"])
def test_and_prompts(monkeypatch, prompt):
    host = A1111Host()
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0, batch_size=2, prompt=prompt)
    assert len(host.records[0]["conds_list"][0]) == prompt.count(" AND ") + 1
    assert_fooocus_result(host, STRONG, atol=1e-4)


def test_inpainting_mask_still_blends(monkeypatch):
    host = A1111Host()
    adapter = start(host, monkeypatch)
    init = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4] = 1.0  # keep the left half of the original
    _, p = generate(host, adapter, STRONG, cfg_scale=9.0, init_latent=init, mask=mask, denoising_strength=0.7)
    assert_fooocus_result(host, STRONG, mask=mask, init_latent=init)
    for record in host.records:
        assert torch.equal(record["denoised"][..., :4], init.expand_as(record["denoised"])[..., :4])


@pytest.mark.parametrize("version", [(1, 8), (1, 10)])
@pytest.mark.parametrize("apply_in_hires", [True, False])
def test_hires_pass_switch(monkeypatch, version, apply_in_hires):
    host = A1111Host(version=version)
    adapter = start(host, monkeypatch)
    params = STRONG.replace(apply_in_hires=apply_in_hires)
    # 72 px wide: the hires size (144) is not a multiple of 64, so even Fooocus's "consistent"
    # vector (target rounded to 64) differs from the host's
    generate(host, adapter, params, cfg_scale=9.0, enable_hr=True, width=72)
    first = [r for r in host.records if r["x"].shape[-1] == 9]
    hires = [r for r in host.records if r["x"].shape[-1] == 18]
    assert first
    assert hires
    assert_fooocus_result(host, params, records=first)
    unet, table = host.shared.sd_model.unet, host.shared.sd_model.sigmas
    hires_calls = list(zip(unet.seen_vectors, unet.seen_sigmas))[-len(hires):]
    original = toy.encode("a cat", "sdxl", 144, 128)["vector"]
    for vector, sigma in hires_calls:
        if apply_in_hires:
            want = toy.reference_adm(original[:1280], 144, 128, 1.5, emphasized(float(sigma[0]), table, 0.3))
            assert torch.allclose(vector[0], want, atol=5e-4)
            assert not torch.allclose(vector[0], original, atol=1e-3)
        else:
            assert torch.equal(vector[0], original)
    if apply_in_hires:
        assert_fooocus_result(host, params, records=hires)
    else:
        for record in hires:
            assert torch.equal(record["denoised"], plain_combine(record["x_out"], record["conds_list"], record["scale"]))


@pytest.mark.parametrize("model", ["sd15", "refiner"])
def test_non_sdxl_base_conds_untouched_with_one_log_line(monkeypatch, caplog, model):
    host = A1111Host(model=model)
    adapter = start(host, monkeypatch)
    with caplog.at_level(logging.WARNING):
        generate(host, adapter, STRONG, cfg_scale=9.0, enable_hr=True)
    assert len(adm_log_lines(caplog)) == 1
    assert_fooocus_result(host, STRONG)  # sharpness and adaptive CFG still apply
    unet = host.shared.sd_model.unet
    if model == "refiner":
        original = toy.encode("a cat", "refiner", 64, 64)["vector"]
        assert torch.equal(unet.seen_vectors[0][0], original)
    else:
        assert unet.seen_vectors == []


def test_timestep_sampler_skipped_with_one_log_line(monkeypatch, caplog):
    host = A1111Host()
    adapter = start(host, monkeypatch)
    with caplog.at_level(logging.WARNING):
        out, p = generate(host, adapter, STRONG, cfg_scale=9.0, sampler_name="DDIM")
    base, _ = generate(host, adapter, None, cfg_scale=9.0, sampler_name="DDIM")
    assert torch.equal(out, base)
    assert host.errors == []
    assert len([r for r in caplog.records if "timestep sampler" in r.getMessage()]) == 1
    assert "DDIM" in p.extra_generation_params["Fooocus note"]


@pytest.mark.parametrize("version", [(1, 9), (1, 10)])
def test_skipped_uncond_steps_keep_host_result(monkeypatch, version):
    host = A1111Host(version=version)
    if version >= (1, 10):
        host.opts.skip_early_cond = 0.4
        kwargs = {}
    else:
        kwargs = {"s_min_uncond": 100.0}  # NGMS on every odd step
    adapter = start(host, monkeypatch)
    generate(host, adapter, STRONG, cfg_scale=9.0, steps=8, **kwargs)
    skipped = [r for r in host.records if r["skipped"]]
    normal = [r for r in host.records if not r["skipped"]]
    assert skipped
    assert normal
    for record in skipped:
        assert torch.equal(record["denoised"], record["x_out"][:1])
    assert_fooocus_result(host, STRONG, records=normal)


def test_cfg_one_untouched(monkeypatch):
    host = A1111Host()
    adapter = start(host, monkeypatch)
    params = FooocusParams(enabled=True, sharpness=30.0, adm_scaler_end=0.0)
    generate(host, adapter, params, cfg_scale=1.0)
    for record in host.records:
        assert torch.equal(record["denoised"], plain_combine(record["x_out"], record["conds_list"], 1.0))


class Boom(RuntimeError):
    pass


@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_cleanup_after_exception(monkeypatch, error):
    host = A1111Host(version=(1, 10))
    adapter = start(host, monkeypatch)
    sc = host.script_callbacks
    calls = []

    def explode(params):
        calls.append(registered_count(sc))
        if len(calls) == 3:
            raise error("stop")

    # callbacks' exceptions are swallowed by the host, so raise from the model itself
    unet = host.shared.sd_model.unet
    original_eps = unet.eps

    def eps(*args):
        explode(None)
        return original_eps(*args)

    unet.eps = eps
    p = host.processing(cfg_scale=9.0)
    with pytest.raises(error):
        host.process_images(p, ScriptStandIn(adapter, STRONG))
    assert calls[0] == 2  # our two callbacks were there during sampling
    assert registered_count(sc) == 0
    assert "sample" not in vars(p)
    assert STATE_ATTRIBUTE not in vars(p)
    adapter.end_generation(p)  # idempotent


def test_cleanup_after_interrupt(monkeypatch):
    host = A1111Host(version=(1, 8))
    adapter = start(host, monkeypatch)
    sc = host.script_callbacks

    def interrupt(params):
        if host.state.sampling_step >= 2:
            host.state.interrupted = True

    sc.on_cfg_after_cfg(interrupt)
    out, p = generate(host, adapter, STRONG, cfg_scale=9.0, n_iter=2)
    assert out is not None
    assert len(host.records) == 3
    assert registered_count(sc) == 1
    assert "sample" not in vars(p)


def test_other_job_is_left_alone(monkeypatch):
    """A callback firing for another job (its own p, e.g. an ADetailer pass) does nothing."""
    host = A1111Host(version=(1, 10))
    adapter = start(host, monkeypatch)
    sc = host.script_callbacks
    inner = {}

    def nested_job(params):
        if "done" in inner or host.state.sampling_step != 1:
            return
        inner["done"] = True
        p2 = host.processing(cfg_scale=9.0, prompt="a dog", seed=7)
        sampler = host.create_sampler("Euler")
        p2.sampler = sampler
        c, uc = p2.setup_conds(64, 64)
        before = len(host.records)
        x = p2.noise((1, 4, 8, 8))
        inner["out"] = sampler.sample(p2, x, c, uc, image_conditioning=p2.image_cond(x))
        inner["records"] = host.records[before:]
        del host.records[before:]

    sc.on_cfg_after_cfg(nested_job)
    generate(host, adapter, STRONG, cfg_scale=9.0)
    for record in inner["records"]:
        assert torch.equal(record["denoised"], plain_combine(record["x_out"], record["conds_list"], record["scale"]))
    assert_fooocus_result(host, STRONG)


def test_other_thread_is_left_alone_without_denoiser(monkeypatch):
    """A1111 1.6/1.7 (no `denoiser` field): only the generation's own sampling thread counts. A second
    job sampling on another thread while ours is sampling (a second API request) is left to the host,
    and our own job still gets Fooocus CFG."""
    host = A1111Host(version=(1, 7))
    adapter = start(host, monkeypatch)
    sc = host.script_callbacks
    inner = {}

    def other_job():
        p2 = host.processing(cfg_scale=9.0, prompt="a dog", seed=7)
        sampler = host.create_sampler("Euler")
        p2.sampler = sampler
        c, uc = p2.setup_conds(64, 64)
        x = p2.noise((1, 4, 8, 8))
        inner["out"] = sampler.sample(p2, x, c, uc, image_conditioning=p2.image_cond(x))

    def run_other_job_on_another_thread(params):
        if "done" in inner or host.state.sampling_step != 1:
            return
        inner["done"] = True
        before = len(host.records)
        thread = threading.Thread(target=other_job)
        thread.start()
        thread.join()
        inner["records"] = host.records[before:]
        del host.records[before:]

    sc.on_cfg_after_cfg(run_other_job_on_another_thread)
    generate(host, adapter, STRONG, cfg_scale=9.0)
    assert host.errors == []
    assert "out" in inner and inner["records"], "the other job must have sampled"
    for record in inner["records"]:
        plain = plain_combine(record["x_out"], record["conds_list"], record["scale"])
        assert torch.equal(record["denoised"], plain)
        # Fooocus CFG would change these calls (guards against a vacuous comparison)
        assert not torch.allclose(a1111_expected(record, STRONG, host.shared.sd_model.sigmas), plain, atol=1e-3)
    assert_fooocus_result(host, STRONG)


def test_refiner_switch_keeps_cfg_and_skips_adm(monkeypatch, caplog):
    """A1111's built-in refiner switches models inside the same sampling: the callbacks stay, the
    refiner's 2560-wide vector is left alone (one log line), sharpness/adaptive CFG keep running."""
    host = A1111Host(version=(1, 10), refiner_switch_step=2)
    adapter = start(host, monkeypatch)
    base = host.shared.sd_model
    with caplog.at_level(logging.WARNING):
        generate(host, adapter, STRONG, cfg_scale=9.0)
    assert host.refiner is not None
    assert_fooocus_result(host, STRONG)
    assert len(adm_log_lines(caplog)) == 1
    original = toy.encode("a cat", "refiner", 64, 64)["vector"]
    assert torch.equal(host.refiner.unet.seen_vectors[0][0], original)
    assert base.unet.seen_vectors  # both models ran
    assert len(host.records) == 4
