"""The schedule plot's numbers (`guidance/preview.py`) against an independent numpy float64
formulation of the hosts' σ schedules and of Fooocus's per-step rules."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from lib_fooocus.guidance.preview import resolve_scheduler, schedule_preview, schedule_sigmas


def numpy_table() -> np.ndarray:
    betas = np.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=np.float64) ** 2
    alphas = np.cumprod(1.0 - betas)
    return np.sqrt((1.0 - alphas) / alphas)


def numpy_schedule(steps: int, scheduler: str) -> np.ndarray:
    table = numpy_table()
    log_table = np.log(table)

    def sigma_at(t):
        low, high = np.floor(t).astype(int), np.ceil(t).astype(int)
        w = t - low
        return np.exp((1 - w) * log_table[low] + w * log_table[high])

    s_min, s_max = table[0], table[-1]
    if scheduler == "karras":
        ramp = np.linspace(0, 1, steps)
        return (s_max ** (1 / 7) + ramp * (s_min ** (1 / 7) - s_max ** (1 / 7))) ** 7
    if scheduler == "exponential":
        return np.exp(np.linspace(np.log(s_max), np.log(s_min), steps))
    if scheduler == "sgm_uniform":
        return sigma_at(np.linspace(999, 0, steps + 1)[:-1])
    if scheduler == "simple":
        return np.array([table[999 - int(i * 1000 / steps)] for i in range(steps)])
    return sigma_at(np.linspace(999, 0, steps))


def numpy_timesteps(sigmas: np.ndarray) -> np.ndarray:
    log_table = np.log(numpy_table())
    return np.abs(np.log(sigmas)[:, None] - log_table[None, :]).argmin(axis=1)


def nearest_timesteps(sigmas: np.ndarray) -> list[set[int]]:
    """Per σ the nearest timesteps in log space; two on a tie (σ halfway between table entries, as
    Uniform's interpolated σ can be), where float32 and float64 may pick either."""
    log_table = np.log(numpy_table())
    distances = np.abs(np.log(sigmas)[:, None] - log_table[None, :])
    best = distances.min(axis=1, keepdims=True)
    return [set(np.nonzero(row <= b + 1e-6)[0].tolist()) for row, b in zip(distances, best)]


@pytest.mark.parametrize("scheduler", ["uniform", "karras", "exponential", "sgm_uniform", "simple"])
@pytest.mark.parametrize("steps", [1, 7, 30])
def test_sigmas_and_timesteps_match_numpy(scheduler, steps):
    ours = schedule_sigmas(steps, scheduler).numpy()
    assert ours.shape == (steps + 1,) and ours[-1] == 0
    reference = numpy_schedule(steps, scheduler)
    np.testing.assert_allclose(ours[:-1], reference, rtol=2e-6)
    preview = schedule_preview(
        steps=steps, cfg_scale=9, sharpness=2, adaptive_cfg=7, adm_scaler_end=0.3, scheduler=scheduler,
        sampler="Euler",
    )
    allowed = nearest_timesteps(reference)
    assert all(point.timestep in near for point, near in zip(preview.points, allowed))
    assert sum(len(near) == 1 for near in allowed) >= steps // 2  # mostly no tie at all


def test_adaptive_cfg_sharpness_and_adm_per_step_at_cfg_9():
    preview = schedule_preview(
        steps=30, cfg_scale=9, sharpness=2, adaptive_cfg=7, adm_scaler_end=0.3, sampler="DPM++ 2M",
        scheduler="Automatic",
    )
    assert preview.scheduler == "karras"  # the sampler's default on A1111 1.9+ / Forge
    first, last = preview.points[0], preview.points[-1]
    assert (first.timestep, first.progress, first.effective_cfg, first.sharpness_alpha) == (999, 0.0, 7.0, 0.0)
    assert first.adm_scaled and not last.adm_scaled
    assert (last.timestep, last.progress) == (0, 1.0)
    assert last.effective_cfg == pytest.approx(9.0) and last.sharpness_alpha == pytest.approx(0.002)
    timesteps = numpy_timesteps(numpy_schedule(30, "karras"))
    for point, t in zip(preview.points, timesteps):
        p = 1 - t / 999
        assert point.progress == pytest.approx(p, abs=1e-6)
        assert point.effective_cfg == pytest.approx(7 + p * (9 - 7), abs=1e-5)
        assert point.sharpness_alpha == pytest.approx(0.001 * 2 * p, abs=1e-8)
        assert point.adm_scaled == (t > 999 * (1 - 0.3))
    assert preview.adm_steps == [point.step for point in preview.points if point.adm_scaled]
    assert 1 <= len(preview.adm_steps) < 30


def test_cfg_at_or_below_adaptive_is_flat_and_cfg_one_turns_the_tricks_off():
    flat = schedule_preview(steps=20, cfg_scale=7, sharpness=2, adaptive_cfg=7, adm_scaler_end=0.3)
    assert {point.effective_cfg for point in flat.points} == {7.0}
    assert flat.points[-1].sharpness_alpha > 0
    off = schedule_preview(steps=20, cfg_scale=1, sharpness=2, adaptive_cfg=7, adm_scaler_end=0.3)
    assert off.tricks_off_reason
    assert {(point.effective_cfg, point.sharpness_alpha) for point in off.points} == {(1.0, 0.0)}
    never = schedule_preview(steps=20, cfg_scale=9, sharpness=0, adaptive_cfg=7, adm_scaler_end=0.0)
    assert never.adm_steps == [] and {point.sharpness_alpha for point in never.points} == {0.0}


@pytest.mark.parametrize(
    ("sampler", "scheduler", "expected"),
    [
        ("DPM++ 2M", "Automatic", ("karras", False)),
        ("DPM++ 2M Karras", None, ("karras", False)),  # A1111 < 1.9: the scheduler is in the name
        ("DPM2 a Karras", None, ("karras", True)),
        ("DPM++ 3M SDE", "Automatic", ("exponential", True)),
        ("Euler a", "Automatic", ("uniform", False)),
        ("Euler a", "Karras", ("karras", False)),
        ("Euler", "SGM Uniform", ("sgm_uniform", False)),
        ("Euler", "Normal", ("uniform", False)),
        (None, None, ("uniform", False)),
    ],
)
def test_scheduler_resolution(sampler, scheduler, expected):
    drawn, discard, note = resolve_scheduler(sampler, scheduler)
    assert (drawn, discard) == expected
    assert note == ""


def test_unmodelled_scheduler_says_so_and_discarding_drops_the_next_to_last_sigma():
    drawn, _discard, note = resolve_scheduler("Euler", "Align Your Steps")
    assert drawn == "uniform" and "Align Your Steps" in note
    preview = schedule_preview(
        steps=10, cfg_scale=9, sharpness=2, adaptive_cfg=7, adm_scaler_end=0.3, sampler="DPM++ 3M SDE"
    )
    eleven = numpy_schedule(11, "exponential")
    expected = np.concatenate([eleven[:-1]])[:10]  # 11 σ; the next-to-last of [11 σ, 0] is σ_10 (dropped)
    assert len(preview.points) == 10
    np.testing.assert_allclose([point.sigma for point in preview.points], expected, rtol=2e-6)
    assert math.isclose(preview.points[-1].sigma, eleven[9], rel_tol=2e-6)


# ---- the SVG the accordion shows ------------------------------------------------------------------


def _parse(markup: str):
    import xml.etree.ElementTree as ET

    return ET.fromstring(markup)


def _points(element) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in element.get("points").split()]


def test_svg_draws_each_step_and_the_adm_window():
    from lib_fooocus.webui import schedule_plot

    preview = schedule_preview(
        steps=30, cfg_scale=9, sharpness=2, adaptive_cfg=7, adm_scaler_end=0.3, sampler="DPM++ 2M Karras"
    )
    root = _parse(schedule_plot.schedule_svg(preview))
    ns = "{http://www.w3.org/2000/svg}"
    svg = root.find(f"{ns}svg")
    cfg = _points(svg.find(f"{ns}polyline[@class='fooocus-cfg-line']"))
    alpha = _points(svg.find(f"{ns}polyline[@class='fooocus-alpha-line']"))
    assert len(cfg) == len(alpha) == 30
    xs = [x for x, _y in cfg]
    assert xs[0] == schedule_plot.LEFT and xs[-1] == schedule_plot.RIGHT and xs == sorted(xs)
    # y grows downwards: the CFG line rises from the adaptive scale to the full one, as the numbers do
    ys = [y for _x, y in cfg]
    assert ys[0] > ys[-1]
    steps_pairs = zip(itertools.pairwise(ys), itertools.pairwise(preview.points))
    assert all((a > b) == (p.effective_cfg < q.effective_cfg)
               for (a, b), (p, q) in steps_pairs if p.effective_cfg != q.effective_cfg)
    assert alpha[0][1] == schedule_plot.BOTTOM and alpha[-1][1] == schedule_plot.TOP  # 0 → its maximum
    window = svg.find(f"{ns}rect[@class='fooocus-adm-window']")
    start, width = float(window.get("x")), float(window.get("width"))
    last_scaled = preview.adm_steps[-1]
    assert start <= xs[0] and start + width >= xs[last_scaled - 1]
    assert start + width < xs[last_scaled]  # the first unscaled step is outside the band
    text = "".join(root.itertext())
    assert f"30 steps (Karras): CFG 7 → 9; sharpness α 0 → 0.002; ADM sizes scaled in steps 1–{last_scaled}." in text


def test_svg_without_adm_or_sharpness_and_at_cfg_one():
    from lib_fooocus.webui import schedule_plot

    plain = _parse(schedule_plot.schedule_plot_html(0, 7, 0.0, 20, 9, "Euler", "Uniform"))
    ns = "{http://www.w3.org/2000/svg}"
    assert plain.find(f".//{ns}rect[@class='fooocus-adm-window']") is None
    assert plain.find(f".//{ns}polyline[@class='fooocus-alpha-line']") is None
    assert "ADM sizes never scaled" in "".join(plain.itertext())
    off = "".join(_parse(schedule_plot.schedule_plot_html(2, 7, 0.3, 20, 1, "Euler", None)).itertext())
    assert "CFG 1: positive prompt only" in off


def test_plot_html_escapes_names_and_survives_odd_values():
    from lib_fooocus.webui import schedule_plot

    markup = schedule_plot.schedule_plot_html("x", None, float("nan"), "abc", "", "Euler", '<img src=x onerror="a()">')
    assert "<img" not in markup and "&lt;img" in markup
    root = _parse(markup)  # well-formed
    assert "20 steps (Uniform): CFG 7;" in "".join(root.itertext())  # the defaults: 20 steps, CFG 7


def test_plot_is_drawn_once_per_set_of_values(monkeypatch):
    # Both tabs' accordions start from the same values: the second build must not draw again.
    from lib_fooocus.guidance import preview
    from lib_fooocus.webui import schedule_plot

    schedule_plot._plot_for.cache_clear()
    drawn = []
    real = preview.schedule_preview
    monkeypatch.setattr(preview, "schedule_preview", lambda **kwargs: drawn.append(kwargs) or real(**kwargs))
    first = schedule_plot.schedule_plot_html(2.0, 7.0, 0.3, 20, 7.0, "Euler", None)
    assert schedule_plot.schedule_plot_html("2", 7, 0.3, 20.0, "7", "Euler", None) == first  # same values
    assert len(drawn) == 1
    other = schedule_plot.schedule_plot_html(2.0, 7.0, 0.3, 21, 7.0, "Euler", None)
    assert len(drawn) == 2 and other != first
    assert drawn[1]["steps"] == 21
