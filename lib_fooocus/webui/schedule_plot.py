"""The accordion's schedule plot: a small inline SVG (works the same in gradio 3.41 and 4.40, no
plotting library) of what the sampling tricks do per step, from `guidance.preview`.

Drawn: the effective CFG scale (adaptive CFG) as a line on the left axis, the sharpness blend α as a
dashed line on its own right axis, and the steps whose ADM sizes are the scaled ones as a shaded
band. Redrawn when the Fooocus sliders or, where the tab's components were seen, steps, CFG,
sampler or scheduler change.

How it is redrawn (gradio 3.41 and 4.x alike): a change of an input asks the page to click a hidden
"redraw" button (`javascript/fooocus_ui.js`, `fooocusPlot`); that button's event draws on the server
from the current values, and when it is done the page compares the values the drawing was made from
(`data-drawn`) with the current ones and asks again if they differ. A plain `change → server` wiring
left the plot behind on A1111: gradio 3.41 drops an event while the same event's previous call is
still running, so while dragging the steps slider the last value was often never drawn.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Callable
from typing import Any

WIDTH, HEIGHT = 480, 190
LEFT, RIGHT, TOP, BOTTOM = 44, 436, 14, 150
CFG_COLOR = "#e8710a"
ALPHA_COLOR = "#3b82f6"
SCHEDULER_LABELS = {
    "uniform": "Uniform",
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
}
DEFAULT_STEPS, DEFAULT_CFG = 20, 7.0
PLOT_CACHE_SIZE = 64  # drawings kept (a few kB each)


def _number(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


def _fmt(value: float) -> str:
    text = f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.4f}"
    return text.rstrip("0").rstrip(".")


def caption(preview: Any) -> str:
    """One line saying what the plot shows, in numbers."""
    points = preview.points
    steps = len(points)
    scheduler = SCHEDULER_LABELS.get(preview.scheduler, preview.scheduler)
    if preview.tricks_off_reason:
        return f"{steps} steps ({scheduler}): {preview.tricks_off_reason}."
    first, last = points[0].effective_cfg, points[-1].effective_cfg
    cfg_text = f"CFG {_fmt(first)}" if math.isclose(first, last) else f"CFG {_fmt(first)} → {_fmt(last)}"
    alpha_text = f"sharpness α {_fmt(points[0].sharpness_alpha)} → {_fmt(points[-1].sharpness_alpha)}"
    adm = preview.adm_steps
    if not adm:
        adm_text = "ADM sizes never scaled"
    elif len(adm) == 1:
        adm_text = f"ADM sizes scaled in step {adm[0]}"
    else:
        adm_text = f"ADM sizes scaled in steps {adm[0]}–{adm[-1]}"
    return f"{steps} steps ({scheduler}): {cfg_text}; {alpha_text}; {adm_text}."


def schedule_svg(preview: Any) -> str:
    """The plot as one `<div>` holding an SVG and its caption; every text is escaped."""
    points = preview.points
    steps = len(points)

    def x_of(step: int) -> float:
        return LEFT + (RIGHT - LEFT) * ((step - 1) / (steps - 1) if steps > 1 else 0.5)

    cfg_values = [point.effective_cfg for point in points]
    low, high = math.floor(min(cfg_values)) - 0.5, math.ceil(max(cfg_values)) + 0.5

    def y_cfg(value: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * (value - low) / (high - low)

    alpha_max = max(point.sharpness_alpha for point in points)

    def y_alpha(value: float) -> float:
        return BOTTOM - (BOTTOM - TOP) * (value / alpha_max if alpha_max > 0 else 0.0)

    parts = [
        f'<svg class="fooocus-schedule-svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" style="max-width:{WIDTH * 1.5}px">',
        f"<title>{html.escape(caption(preview))}</title>",
    ]
    if preview.adm_steps:
        half = (RIGHT - LEFT) / (2 * max(steps - 1, 1))
        start = max(LEFT, x_of(preview.adm_steps[0]) - half)
        end = min(RIGHT, x_of(preview.adm_steps[-1]) + half)
        parts.append(
            f'<rect class="fooocus-adm-window" x="{start:.1f}" y="{TOP}" width="{end - start:.1f}" '
            f'height="{BOTTOM - TOP}" fill="#8888" fill-opacity="0.25"/>'
        )
    parts.append(
        f'<path d="M{LEFT} {TOP}V{BOTTOM}H{RIGHT}V{TOP}" fill="none" stroke="currentColor" stroke-opacity="0.5"/>'
    )
    cfg_line = " ".join(f"{x_of(p.step):.1f},{y_cfg(p.effective_cfg):.1f}" for p in points)
    alpha_line = " ".join(f"{x_of(p.step):.1f},{y_alpha(p.sharpness_alpha):.1f}" for p in points)
    parts.append(
        f'<polyline class="fooocus-cfg-line" points="{cfg_line}" fill="none" stroke="{CFG_COLOR}" stroke-width="2"/>'
    )
    if alpha_max > 0:
        parts.append(
            f'<polyline class="fooocus-alpha-line" points="{alpha_line}" fill="none" stroke="{ALPHA_COLOR}" '
            'stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
    text = 'font-size="11" fill="currentColor"'
    parts += [
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" {text}>{_fmt(high)}</text>',
        f'<text x="{LEFT - 4}" y="{BOTTOM}" text-anchor="end" {text}>{_fmt(low)}</text>',
        f'<text x="{RIGHT + 4}" y="{TOP + 4}" {text}>{_fmt(alpha_max)}</text>',
        f'<text x="{RIGHT + 4}" y="{BOTTOM}" {text}>0</text>',
        f'<text x="{LEFT}" y="{BOTTOM + 14}" {text}>step 1</text>',
        f'<text x="{RIGHT}" y="{BOTTOM + 14}" text-anchor="end" {text}>step {steps}</text>',
        f'<text x="{LEFT}" y="{BOTTOM + 32}" font-size="11" fill="{CFG_COLOR}">— effective CFG (left)</text>',
        f'<text x="{LEFT + 150}" y="{BOTTOM + 32}" font-size="11" fill="{ALPHA_COLOR}">- - sharpness α (right)</text>',
        f'<text x="{LEFT + 290}" y="{BOTTOM + 32}" {text}>▮ ADM sizes scaled</text>',
        "</svg>",
    ]
    lines = [caption(preview)]
    if preview.note:
        lines.append(preview.note)
    lines.append("Per step at its first model call; 2nd-order samplers also call the model in between.")
    notes = "".join(f"<div>{html.escape(line)}</div>" for line in lines)
    return f'<div class="fooocus-schedule">{"".join(parts)}<div class="fooocus-schedule-caption">{notes}</div></div>'


def schedule_plot_html(
    sharpness: Any,
    adaptive_cfg: Any,
    adm_scaler_end: Any,
    steps: Any = DEFAULT_STEPS,
    cfg_scale: Any = DEFAULT_CFG,
    sampler: Any = None,
    scheduler: Any = None,
) -> str:
    """The plot for the UI's current values (anything unreadable falls back to a default), marked
    with the values it was drawn from (`data-drawn`, see `drawn_values`)."""
    plot = _plot_for(
        int(_number(steps, DEFAULT_STEPS)),
        _number(cfg_scale, DEFAULT_CFG),
        _number(sharpness, 2.0),
        _number(adaptive_cfg, 7.0),
        _number(adm_scaler_end, 0.3),
        None if sampler is None else str(sampler),
        None if scheduler is None else str(scheduler),
    )
    drawn = drawn_values(dict(zip(PLOT_INPUTS, (sharpness, adaptive_cfg, adm_scaler_end, steps, cfg_scale,
                                                sampler, scheduler))))
    mark = html.escape(json.dumps(drawn, separators=(",", ":")), quote=True)
    return plot.replace('<div class="fooocus-schedule">', f'<div class="fooocus-schedule" data-drawn="{mark}">', 1)


PLOT_INPUTS = ("sharpness", "adaptive_cfg", "adm_scaler_end", "steps", "cfg_scale", "sampler", "scheduler")
TEXT_INPUTS = frozenset({"sampler", "scheduler"})


def drawn_values(values: dict[str, Any]) -> dict[str, Any]:
    """The inputs as the page compares them (fooocusPlot.check does the same to the current values):
    numbers as floats (None when unreadable), sampler/scheduler as text (or None)."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in TEXT_INPUTS:
            out[name] = None if value is None else str(value)
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            out[name] = number if math.isfinite(number) else None
    return out


@functools.lru_cache(maxsize=PLOT_CACHE_SIZE)
def _plot_for(steps: int, cfg_scale: float, sharpness: float, adaptive_cfg: float, adm_scaler_end: float,
              sampler: str | None, scheduler: str | None) -> str:
    """One drawing per set of values: the txt2img and img2img accordions start from the same values,
    so building the second costs nothing (a pure function of its arguments; a bounded cache)."""
    from lib_fooocus.guidance.preview import schedule_preview

    preview = schedule_preview(
        steps=steps, cfg_scale=cfg_scale, sharpness=sharpness, adaptive_cfg=adaptive_cfg,
        adm_scaler_end=adm_scaler_end, sampler=sampler, scheduler=scheduler,
    )
    return schedule_svg(preview)


HOST_INPUTS = ("steps", "cfg_scale", "sampler", "scheduler")


def build_schedule_plot(
    gr: Any, by_name: dict[str, Any], host: dict[str, Any] | None, elem_id: str, js_kwarg: Callable[[str], dict[str, str]]
) -> Any:
    """Add the plot (a gr.HTML) in the current layout and redraw it on changes of the Fooocus sliders
    and of the tab's steps / CFG / sampler / scheduler where `host` has them (else their defaults);
    how: see the module's docstring."""
    host = {name: component for name, component in (host or {}).items() if component is not None}
    fooocus = [by_name["sharpness"], by_name["adaptive_cfg"], by_name["adm_scaler_end"]]
    defaults = {"steps": DEFAULT_STEPS, "cfg_scale": DEFAULT_CFG, "sampler": None, "scheduler": None}
    values = [component.value for component in fooocus] + [
        getattr(host[name], "value", defaults[name]) if name in host else defaults[name] for name in HOST_INPUTS
    ]
    plot = gr.HTML(value=schedule_plot_html(*values), elem_id=elem_id)
    redraw = gr.Button(value="Redraw", elem_id=f"{elem_id}_redraw", elem_classes=[HIDDEN_TRIGGER_CLASS])
    inputs = fooocus + [host[name] if name in host else gr.State(defaults[name]) for name in HOST_INPUTS]
    seen = [(name, component) for name, component in zip(PLOT_INPUTS, fooocus + [host.get(n) for n in HOST_INPUTS])
            if component is not None]
    drawn = redraw.click(fn=schedule_plot_html, inputs=inputs, outputs=[plot], queue=False)
    drawn.then(fn=None, inputs=[plot, *(component for _, component in seen)], outputs=None,
               **js_kwarg(check_js(redraw.elem_id, [name for name, _ in seen])))
    for _, component in seen:
        component.change(fn=None, inputs=None, outputs=None, **js_kwarg(request_js(redraw.elem_id)))
    return plot


HIDDEN_TRIGGER_CLASS = "fooocus-hidden-trigger"  # style.css: display none (the page clicks it)


def request_js(redraw_id: str) -> str:
    """Client-side, on a change of an input: ask for a drawing (javascript/fooocus_ui.js)."""
    return f"() => {{ if (window.fooocusPlot) window.fooocusPlot.request({json.dumps(redraw_id)}); return []; }}"


def check_js(redraw_id: str, names: list[str]) -> str:
    """Client-side, after a drawing: ask again if the values changed meanwhile."""
    return (f"(plot, ...values) => {{ if (window.fooocusPlot) window.fooocusPlot.check({json.dumps(redraw_id)}, "
            f"plot, {json.dumps(names)}, values); return []; }}")
