"""One validated parameter object for every entry point (UI, HTTP API, infotext, X/Y/Z).

`FIELDS` is the single table of the extension's user parameters: their order is the order of the
UI controls and therefore of the positional API list; each row carries the default, the allowed
range, the infotext key and a one-line help text. `FooocusParams` is built from it.

Two policies:
- `from_dict` / `from_args` are strict (HTTP API): any wrong field raises one `ParamsError` that
  names every bad field and its allowed range.
- `from_infotext` and `clamped` are lenient (PNG info paste, X/Y/Z): out-of-range numbers are
  clamped to their range and reported as warnings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class ParamsError(ValueError):
    """Invalid parameters. `errors` holds one human-readable line per bad field."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("Invalid Fooocus parameters: " + "; ".join(self.errors))


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: type  # bool, float, str (a checkpoint name) or tuple (a list of strings)
    default: Any
    infotext: str
    label: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None

    def range_text(self) -> str:
        if self.kind is bool:
            return "true or false"
        if self.kind is tuple:
            return "a list of style names"
        if self.kind is str:
            return 'a checkpoint title, file name or short hash, or "None"'
        return f"a number from {self.minimum:g} to {self.maximum:g}"


# Order = UI order = positional API order. Append new fields at the end only: the position is part
# of the HTTP API.
FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("enabled", bool, False, "Fooocus", "Fooocus", "Turn on the Fooocus tricks for this generation."),
    FieldSpec(
        "sharpness", float, 2.0, "Fooocus sharpness", "Sharpness",
        "Edge-preserving filter on the positive prediction; higher = crisper detail (Fooocus default 2).",
        0.0, 30.0, 0.001,
    ),
    FieldSpec(
        "adaptive_cfg", float, 7.0, "Fooocus adaptive CFG", "Adaptive CFG",
        "CFG mimicking: above this CFG, early steps use this milder scale and ramp up to your CFG.",
        1.0, 30.0, 0.01,
    ),
    FieldSpec(
        "adm_scaler_positive", float, 1.5, "Fooocus ADM positive", "ADM positive scale",
        "Size conditioning of the positive prompt: original size = this x image size.",
        0.1, 3.0, 0.001,
    ),
    FieldSpec(
        "adm_scaler_negative", float, 0.8, "Fooocus ADM negative", "ADM negative scale",
        "Size conditioning of the negative prompt: original size = this x image size.",
        0.1, 3.0, 0.001,
    ),
    FieldSpec(
        "adm_scaler_end", float, 0.3, "Fooocus ADM end", "ADM guidance end",
        "Fraction of the denoising (by timestep) during which the scaled ADM sizes are used.",
        0.0, 1.0, 0.001,
    ),
    FieldSpec(
        "apply_in_hires", bool, True, "Fooocus hires", "Apply in hires pass",
        "Also run the sampling tricks in the hires-fix second pass.",
    ),
    FieldSpec(
        "expansion", bool, False, "Fooocus V2", "Fooocus V2 expansion",
        "Append Fooocus's GPT-2 prompt expansion (seeded per image) as the last prompt chunk.",
    ),
    FieldSpec(
        "styles", tuple, (), "Fooocus styles", "Styles",
        "Fooocus-format styles applied to the prompt, in selection order.",
    ),
    FieldSpec(
        "refiner_checkpoint", str, "None", "Fooocus refiner", "Refiner",
        "Swap to this model's UNet inside the same sampler run (an SDXL refiner or another SDXL model); None = off.",
    ),
    FieldSpec(
        "refiner_switch", float, 0.8, "Fooocus refiner switch", "Refiner switch at",
        "Fraction of the steps sampled by the base: 0.8 for SDXL refiners, any value for two SDXL models.",
        0.1, 1.0, 0.01,
    ),
    FieldSpec(
        "match_fooocus", bool, False, "Fooocus match", "Match Fooocus",
        "Encode prompts and draw noise exactly as Fooocus does (parts encoded separately, pooled sum, "
        "Fooocus emphasis, CPU noise, one Brownian tree per image); prompts with host-only syntax fall back.",
    ),
)

REFINER_OFF = "None"


def refiner_is_on(name: Any) -> bool:
    """A refiner checkpoint is set ("None", "" and whitespace mean off, any case)."""
    return isinstance(name, str) and name.strip().lower() not in ("", "none")

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
FIELDS_BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}
FIELDS_BY_INFOTEXT: dict[str, FieldSpec] = {f.infotext: f for f in FIELDS}
NUMERIC_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.kind is float)


@dataclass(frozen=True)
class FooocusParams:
    enabled: bool = False
    sharpness: float = 2.0
    adaptive_cfg: float = 7.0
    adm_scaler_positive: float = 1.5
    adm_scaler_negative: float = 0.8
    adm_scaler_end: float = 0.3
    apply_in_hires: bool = True
    expansion: bool = False
    styles: tuple[str, ...] = field(default_factory=tuple)
    refiner_checkpoint: str = REFINER_OFF
    refiner_switch: float = 0.8
    match_fooocus: bool = False

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FooocusParams:
        """Strict: unknown names, wrong types, NaN/inf and out-of-range values are all errors."""
        if not isinstance(data, Mapping):
            raise ParamsError([f"expected an object with named fields, got {type(data).__name__}"])
        errors: list[str] = []
        unknown = [k for k in data if k not in FIELDS_BY_NAME]
        if unknown:
            errors.append(
                f"unknown field(s) {', '.join(map(repr, map(str, unknown)))}; known fields: {', '.join(FIELD_NAMES)}"
            )
        values: dict[str, Any] = {}
        for name, raw in data.items():
            spec = FIELDS_BY_NAME.get(name)
            if spec is None:
                continue
            value, error = _validate(spec, raw)
            if error:
                errors.append(error)
            else:
                values[name] = value
        if errors:
            raise ParamsError(errors)
        return cls(**values)

    @classmethod
    def from_args(cls, args: Sequence[Any]) -> FooocusParams:
        """Strict, positional in `FIELDS` order (the UI order); missing trailing args keep defaults."""
        if len(args) > len(FIELDS):
            raise ParamsError(
                [f"too many positional args: got {len(args)}, at most {len(FIELDS)} ({', '.join(FIELD_NAMES)})"]
            )
        return cls.from_dict(dict(zip(FIELD_NAMES, args)))

    def clamped(self) -> tuple[FooocusParams, list[str]]:
        """Numbers pulled into their ranges, with one warning per changed field (X/Y/Z, paste)."""
        changes: dict[str, float] = {}
        warnings: list[str] = []
        for spec in NUMERIC_FIELDS:
            value = getattr(self, spec.name)
            fixed = min(max(value, spec.minimum), spec.maximum)
            if fixed != value:
                changes[spec.name] = fixed
                warnings.append(f"{spec.name}={value:g} is outside {spec.minimum:g}..{spec.maximum:g}; using {fixed:g}")
        return dataclasses.replace(self, **changes), warnings

    def replace(self, **changes: Any) -> FooocusParams:
        return dataclasses.replace(self, **changes)

    # -- views ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(getattr(self, f.name)) if f.kind is tuple else getattr(self, f.name)) for f in FIELDS}

    # -- infotext -------------------------------------------------------------------------------

    def to_infotext(self) -> dict[str, str]:
        """Readable `Key: value` pairs for every non-default field; empty when disabled."""
        if not self.enabled:
            return {}
        out: dict[str, str] = {}
        for spec in FIELDS:
            value = getattr(self, spec.name)
            if spec.name != "enabled" and value == spec.default:
                continue
            if spec.name == "refiner_checkpoint" and not refiner_is_on(value):
                continue
            out[spec.infotext] = _format_value(spec, value)
        return out

    @classmethod
    def from_infotext(cls, fields: Mapping[str, Any]) -> tuple[FooocusParams, list[str]]:
        """Lenient parse of pasted infotext: unknown or unreadable values are skipped with a warning,
        numbers are clamped. Returns the params and the warnings."""
        values: dict[str, Any] = {}
        warnings: list[str] = []
        for key, spec in FIELDS_BY_INFOTEXT.items():
            if key not in fields:
                continue
            try:
                values[spec.name] = _parse_infotext_value(spec, fields[key])
            except ValueError as exc:
                warnings.append(f"{key}: {exc}; keeping the default {_format_value(spec, spec.default)}")
        if values and "enabled" not in values:
            values["enabled"] = True
        params, clamp_warnings = cls(**values).clamped()
        return params, warnings + clamp_warnings


def _validate(spec: FieldSpec, raw: Any) -> tuple[Any, str | None]:
    where = f"{spec.name}: expected {spec.range_text()}"
    if spec.kind is bool:
        if isinstance(raw, bool):
            return raw, None
        return None, f"{where}, got {raw!r}"
    if spec.kind is tuple:
        if isinstance(raw, str) or not isinstance(raw, Sequence) or not all(isinstance(s, str) for s in raw):
            return None, f"{where}, got {raw!r}"
        return tuple(raw), None
    if spec.kind is str:
        if not isinstance(raw, str):
            return None, f"{where}, got {raw!r}"
        return (raw.strip() if refiner_is_on(raw) else REFINER_OFF), None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None, f"{where}, got {raw!r}"
    value = float(raw)
    if not math.isfinite(value) or not spec.minimum <= value <= spec.maximum:
        return None, f"{where}, got {raw!r}"
    return value, None


def _format_value(spec: FieldSpec, value: Any) -> str:
    if spec.kind is tuple:
        return json.dumps(list(value), ensure_ascii=False)
    if spec.kind is bool:
        return str(bool(value))
    if spec.kind is str:
        return str(value)
    return f"{value:g}"


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def _parse_infotext_value(spec: FieldSpec, raw: Any) -> Any:
    if spec.kind is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        msg = f"cannot read {raw!r} as true/false"
        raise ValueError(msg)
    if spec.kind is tuple:
        if isinstance(raw, (list, tuple)):
            return tuple(str(s) for s in raw)
        text = str(raw).strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                msg = f"cannot read {raw!r} as a list of names"
                raise ValueError(msg) from exc
            return tuple(str(s) for s in parsed)
        return tuple(s.strip() for s in text.split(",") if s.strip())
    if spec.kind is str:
        text = str(raw).strip()
        return text if refiner_is_on(text) else REFINER_OFF
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        msg = f"cannot read {raw!r} as a number"
        raise ValueError(msg) from exc
    if not math.isfinite(value):
        msg = f"{raw!r} is not a finite number"
        raise ValueError(msg)
    return value
