from __future__ import annotations

import dataclasses
import math

import pytest

from lib_fooocus.params import FIELD_NAMES, FIELDS, FIELDS_BY_NAME, FooocusParams, ParamsError

EXPECTED_NUMERIC = {
    # name: (default, minimum, maximum) — Fooocus's defaults and UI ranges (Fooocus `webui.py` sliders and
    # `modules/config.py` defaults at 59f183ab)
    "sharpness": (2.0, 0.0, 30.0),
    "adaptive_cfg": (7.0, 1.0, 30.0),
    "adm_scaler_positive": (1.5, 0.1, 3.0),
    "adm_scaler_negative": (0.8, 0.1, 3.0),
    "adm_scaler_end": (0.3, 0.0, 1.0),
}


def test_field_table_matches_dataclass_and_fooocus_defaults():
    names = [f.name for f in dataclasses.fields(FooocusParams)]
    assert names == [f.name for f in FIELDS]
    defaults = FooocusParams()
    for spec in FIELDS:
        assert getattr(defaults, spec.name) == spec.default
        assert spec.infotext.startswith("Fooocus")
        assert spec.help and "\n" not in spec.help
    for name, (default, low, high) in EXPECTED_NUMERIC.items():
        spec = FIELDS_BY_NAME[name]
        assert (spec.default, spec.minimum, spec.maximum) == (default, low, high)
    assert defaults.enabled is False
    assert len({f.infotext for f in FIELDS}) == len(FIELDS)


def test_from_dict_accepts_valid_values_and_ints():
    params = FooocusParams.from_dict({"enabled": True, "sharpness": 3, "adm_scaler_end": 1, "styles": ["A", "B"]})
    assert params == FooocusParams(enabled=True, sharpness=3.0, adm_scaler_end=1.0, styles=("A", "B"))
    assert isinstance(params.sharpness, float)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"sharpness": "3"}, "sharpness: expected a number from 0 to 30, got '3'"),
        ({"sharpness": True}, "sharpness: expected a number from 0 to 30, got True"),
        ({"sharpness": math.nan}, "sharpness: expected a number from 0 to 30, got nan"),
        ({"adaptive_cfg": math.inf}, "adaptive_cfg: expected a number from 1 to 30, got inf"),
        ({"adaptive_cfg": 0.5}, "adaptive_cfg: expected a number from 1 to 30, got 0.5"),
        ({"adm_scaler_positive": 3.01}, "adm_scaler_positive: expected a number from 0.1 to 3"),
        ({"adm_scaler_end": -0.1}, "adm_scaler_end: expected a number from 0 to 1"),
        ({"enabled": 1}, "enabled: expected true or false, got 1"),
        ({"enabled": "true"}, "enabled: expected true or false, got 'true'"),
        ({"styles": "Fooocus Sharp"}, "styles: expected a list of style names"),
        ({"styles": ["ok", 3]}, "styles: expected a list of style names"),
        ({"sharpnes": 2}, "unknown field(s) 'sharpnes'"),
    ],
)
def test_from_dict_rejects_bad_values(data, needle):
    with pytest.raises(ParamsError) as info:
        FooocusParams.from_dict(data)
    assert needle in str(info.value)


def test_one_error_names_every_bad_field():
    with pytest.raises(ParamsError) as info:
        FooocusParams.from_dict({"sharpness": 99, "adm_scaler_end": "x", "bogus": 1, "enabled": True})
    assert len(info.value.errors) == 3
    message = str(info.value)
    for needle in ("sharpness", "0 to 30", "adm_scaler_end", "0 to 1", "bogus"):
        assert needle in message


def test_from_dict_rejects_non_mapping():
    with pytest.raises(ParamsError, match="named fields"):
        FooocusParams.from_dict([1, 2])


def test_from_args_is_positional_in_field_order():
    params = FooocusParams.from_args([True, 5.0, 8.0])
    assert (params.enabled, params.sharpness, params.adaptive_cfg) == (True, 5.0, 8.0)
    assert params.adm_scaler_positive == 1.5
    every_field = FooocusParams(enabled=True, sharpness=3.0, styles=("x",))
    assert FooocusParams.from_args([getattr(every_field, name) for name in FIELD_NAMES]) == every_field
    with pytest.raises(ParamsError, match="too many positional args"):
        FooocusParams.from_args([False] * (len(FIELDS) + 1))
    with pytest.raises(ParamsError, match="sharpness"):
        FooocusParams.from_args([True, "high"])


def test_infotext_only_non_defaults_and_round_trip():
    assert FooocusParams().to_infotext() == {}
    assert FooocusParams(enabled=True).to_infotext() == {"Fooocus": "True"}
    params = FooocusParams(
        enabled=True, sharpness=3.25, adaptive_cfg=9.0, adm_scaler_positive=2.0, adm_scaler_negative=0.5,
        adm_scaler_end=0.45, apply_in_hires=False, expansion=True, styles=("Cinema, Wide", 'Say "hi"'),
    )
    fields = params.to_infotext()
    assert fields["Fooocus sharpness"] == "3.25"
    assert fields["Fooocus hires"] == "False"
    restored, warnings = FooocusParams.from_infotext(fields)
    assert restored == params and warnings == []


def test_match_fooocus_is_the_last_field_default_off_and_round_trips():
    assert FIELDS[-1].name == "match_fooocus" and FIELD_NAMES.index("match_fooocus") == 11
    assert FooocusParams().match_fooocus is False
    params = FooocusParams.from_args([True, 2.0, 7.0, 1.5, 0.8, 0.3, True, False, [], "None", 0.8, True])
    assert params.match_fooocus is True
    fields = params.to_infotext()
    assert fields == {"Fooocus": "True", "Fooocus match": "True"}
    assert FooocusParams.from_infotext(fields) == (params, [])
    assert "Fooocus match" not in FooocusParams(enabled=True).to_infotext()


def test_infotext_paste_clamps_and_warns():
    restored, warnings = FooocusParams.from_infotext(
        {"Fooocus sharpness": "45", "Fooocus ADM end": "-1", "Fooocus adaptive CFG": "abc", "Fooocus styles": "A, B"}
    )
    assert restored.enabled is True
    assert restored.sharpness == 30.0 and restored.adm_scaler_end == 0.0
    assert restored.adaptive_cfg == 7.0
    assert restored.styles == ("A", "B")
    assert len(warnings) == 3
    assert any("sharpness=45 is outside 0..30; using 30" in w for w in warnings)
    assert any("Fooocus adaptive CFG" in w and "abc" in w for w in warnings)


def test_clamped_leaves_valid_params_alone():
    params = FooocusParams(enabled=True, sharpness=4.0)
    assert params.clamped() == (params, [])
