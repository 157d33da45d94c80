"""Fooocus's default preset and its SDXL resolutions, as values for the tab's own controls.

The "Fooocus defaults" button and the resolution dropdown in the accordion are UI conveniences:
they set visible controls (the tab's sampler, schedule type, steps, CFG, width, height and the
accordion's own controls) and nothing else — no checkpoint, LoRA or setting is touched.

The numbers are Fooocus 2.5.5's (`presets/default.json`, `modules/flags.py`): sampler
dpmpp_2m_sde_gpu with the Karras schedule, 30 steps (Speed) or 60 (Quality), CFG 4, 1152×896, the
styles Fooocus V2 + Fooocus Enhance + Fooocus Sharp, no refiner, and the sampling tricks' defaults.
No gradio here: `ui.py` turns these values into updates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lib_fooocus.params import FIELDS_BY_NAME, REFINER_OFF


@dataclass(frozen=True)
class Resolution:
    width: int
    height: int
    ratio: str

    @property
    def label(self) -> str:
        return f"{self.width}×{self.height} ({self.ratio})"


def _table(rows: str) -> tuple[Resolution, ...]:
    found = []
    for row in rows.split(","):
        size, ratio = row.split()
        width, height = size.split("x")
        found.append(Resolution(int(width), int(height), ratio))
    return tuple(found)


# Fooocus's `sdxl_aspect_ratios` (width x height, aspect ratio), in its order.
FOOOCUS_RESOLUTIONS: tuple[Resolution, ...] = _table(
    "704x1408 1:2, 704x1344 11:21, 768x1344 4:7, 768x1280 3:5, 832x1216 13:19, 832x1152 13:18, "
    "896x1152 7:9, 896x1088 14:17, 960x1088 15:17, 960x1024 15:16, 1024x1024 1:1, 1024x960 16:15, "
    "1088x960 17:15, 1088x896 17:14, 1152x896 9:7, 1152x832 18:13, 1216x832 19:13, 1280x768 5:3, "
    "1344x768 7:4, 1344x704 21:11, 1408x704 2:1, 1472x704 23:11, 1536x640 12:5, 1600x640 5:2, "
    "1664x576 26:9, 1728x576 3:1"
)
DEFAULT_RESOLUTION = Resolution(1152, 896, "9:7")

SPEED, QUALITY = "Speed", "Quality"
PERFORMANCE_STEPS: dict[str, int] = {SPEED: 30, QUALITY: 60}
FOOOCUS_CFG = 4.0
FOOOCUS_SAMPLER = "DPM++ 2M SDE"  # Fooocus's dpmpp_2m_sde_gpu
FOOOCUS_SCHEDULER = "Karras"
FOOOCUS_SAMPLER_WITH_SCHEDULE = "DPM++ 2M SDE Karras"  # hosts without a schedule type (A1111 ≤ 1.8)
FOOOCUS_STYLES: tuple[str, ...] = ("Fooocus V2", "Fooocus Enhance", "Fooocus Sharp")
# The accordion's controls the button sets: the sampling tricks' Fooocus values and no refiner.
TRICK_FIELDS: tuple[str, ...] = ("sharpness", "adaptive_cfg", "adm_scaler_positive", "adm_scaler_negative",
                                 "adm_scaler_end")


def label_for_size(width: Any, height: Any) -> str | None:
    """The table's label for this size, or None when it is not one of Fooocus's."""
    try:
        size = (int(float(width)), int(float(height)))
    except (TypeError, ValueError):
        return None
    return next((r.label for r in FOOOCUS_RESOLUTIONS if (r.width, r.height) == size), None)


def steps_for(performance: Any) -> int:
    return PERFORMANCE_STEPS.get(str(performance), PERFORMANCE_STEPS[SPEED])


def choice_values(choices: Iterable[Any] | None) -> list[str]:
    """A Dropdown/Radio's choices as values: gradio 4 keeps (label, value) pairs, gradio 3 strings."""
    values = []
    for choice in choices or ():
        value = choice[1] if isinstance(choice, (tuple, list)) and len(choice) == 2 else choice
        values.append(str(value))
    return values


@dataclass(frozen=True)
class SamplerChoice:
    sampler: str | None  # None: the tab offers no sampler Fooocus uses (left as it is)
    scheduler: str | None  # None: no schedule type control, or no Karras in it
    note: str = ""


def fooocus_sampler(sampler_choices: Iterable[Any] | None, scheduler_choices: Iterable[Any] | None) -> SamplerChoice:
    """DPM++ 2M SDE + Karras in the tab's terms: sampler and schedule type where the tab has a
    schedule type dropdown (A1111 1.9+, Forge), else the combined "DPM++ 2M SDE Karras" (A1111 ≤ 1.8).
    `scheduler_choices` is None when the tab has no schedule type control."""
    samplers = choice_values(sampler_choices)
    if scheduler_choices is not None:
        schedulers = choice_values(scheduler_choices)
        scheduler = FOOOCUS_SCHEDULER if FOOOCUS_SCHEDULER in schedulers else None
        if FOOOCUS_SAMPLER in samplers and scheduler is not None:
            return SamplerChoice(FOOOCUS_SAMPLER, scheduler)
    if FOOOCUS_SAMPLER_WITH_SCHEDULE in samplers:
        return SamplerChoice(FOOOCUS_SAMPLER_WITH_SCHEDULE, None)
    if FOOOCUS_SAMPLER in samplers:
        return SamplerChoice(FOOOCUS_SAMPLER, None, f"the tab has no {FOOOCUS_SCHEDULER} schedule for it")
    return SamplerChoice(None, None, f"the tab offers no {FOOOCUS_SAMPLER} sampler")


def fooocus_styles(selectable: Sequence[str]) -> tuple[list[str], list[str]]:
    """Fooocus's default styles the library has, and those it lacks (not imported)."""
    offered = set(selectable)
    present = [name for name in FOOOCUS_STYLES if name in offered]
    return present, [name for name in FOOOCUS_STYLES if name not in offered]


@dataclass
class DefaultsPlan:
    """Value per control name. Host controls: sampler, scheduler, steps, cfg_scale, width, height;
    ours: the FIELDS names. Only controls the tab has are listed; `note` says what was left out."""

    values: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = []
        if "sampler" in self.values:
            sampler = self.values["sampler"]
            scheduler = self.values.get("scheduler")
            parts.append(f"{sampler} + {scheduler}" if scheduler else str(sampler))
        if "steps" in self.values:
            parts.append(f"{self.values['steps']} steps")
        if "cfg_scale" in self.values:
            parts.append(f"CFG {self.values['cfg_scale']:g}")
        if "width" in self.values and "height" in self.values:
            parts.append(f"{self.values['width']}×{self.values['height']}")
        if "styles" in self.values:
            parts.append("styles: " + (", ".join(self.values["styles"]) or "none"))
        text = "Fooocus defaults set: " + "; ".join(parts) + "."
        if self.notes:
            text += " Not set: " + "; ".join(self.notes) + "."
        return text


def fooocus_defaults(
    host_controls: Sequence[str],
    sampler_choices: Iterable[Any] | None,
    scheduler_choices: Iterable[Any] | None,
    selectable_styles: Sequence[str],
    performance: Any = SPEED,
) -> DefaultsPlan:
    """What the "Fooocus defaults" button puts into each control. `host_controls` names the tab's
    controls that were found (sampler, scheduler, steps, cfg_scale, width, height)."""
    plan = DefaultsPlan()
    have = set(host_controls)
    if "sampler" in have:
        choice = fooocus_sampler(sampler_choices, scheduler_choices if "scheduler" in have else None)
        if choice.sampler is not None:
            plan.values["sampler"] = choice.sampler
        if choice.scheduler is not None:
            plan.values["scheduler"] = choice.scheduler
        if choice.note:
            plan.notes.append(f"sampler ({choice.note})")
    if "steps" in have:
        plan.values["steps"] = steps_for(performance)
    if "cfg_scale" in have:
        plan.values["cfg_scale"] = FOOOCUS_CFG
    if "width" in have and "height" in have:
        plan.values["width"], plan.values["height"] = DEFAULT_RESOLUTION.width, DEFAULT_RESOLUTION.height
    missing_host = [name for name in ("sampler", "steps", "cfg_scale", "width") if name not in have]
    if missing_host:
        plan.notes.append("the tab's " + ", ".join(n.replace("_", " ") for n in missing_host) + " (not found on the page)")
    for name in TRICK_FIELDS:
        plan.values[name] = FIELDS_BY_NAME[name].default
    plan.values["refiner_checkpoint"] = REFINER_OFF
    plan.values["enabled"] = True
    styles, lacking = fooocus_styles(selectable_styles)
    plan.values["styles"] = styles
    if lacking:
        plan.notes.append(", ".join(lacking) + " (not in the style library: use Import styles)")
    return plan
