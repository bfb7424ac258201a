"""The mobile dashboard's rules (issue #19 item 2), no server: each widget kind binds only to the
datastream types it can show, and its settings must suit it (a range for sliders, step controls
and gauges; 2 to 6 options for a segmented switch, 2 to 50 for a menu, inside the datastream's
range; a format only on a labeled value; a period only on a chart)."""

from __future__ import annotations

import msgspec
import pytest

from backend.console.mobile import ACCEPTS, MobileWidget, check_mobile_widgets
from backend.errors import ValidationError
from backend.templates.models import Datastream

DATASTREAMS = [
    Datastream(template_id=1, pin=0, name="Temperature", type="double", min=-40, max=85),
    Datastream(template_id=1, pin=1, name="Relay", type="integer", min=0, max=1),
    Datastream(template_id=1, pin=2, name="Where", type="location"),
    Datastream(template_id=1, pin=3, name="Log", type="string"),
    Datastream(template_id=1, pin=4, name="Mode", type="enum"),
    Datastream(template_id=1, pin=5, name="Count", type="integer"),
]
TYPES = {d.pin: d.type for d in DATASTREAMS}


def w(**kw: object) -> MobileWidget:
    base: dict[str, object] = {"id": "a", "type": "value", "pin": 0}
    return msgspec.convert({**base, **kw}, MobileWidget)


def two_options() -> list[dict[str, object]]:
    return [{"value": 0, "label": "Off"}, {"value": 1, "label": "On"}]


def test_every_kind_binds_to_exactly_the_datastream_types_it_can_show() -> None:
    for kind, accepted in ACCEPTS.items():
        for pin, ds_type in TYPES.items():
            extra: dict[str, object] = {"options": two_options()} if kind in ("segmented", "menu") else {}
            if kind in ("slider", "step", "gauge") and pin == 5:
                extra = {"min": 0, "max": 10}  # Count has no range of its own
            if kind == "image_button":
                extra = {"off_image": 1, "on_image": 2}
            widget = w(type=kind, pin=pin, **extra)
            if ds_type in accepted:
                check_mobile_widgets([widget], DATASTREAMS)
            else:
                with pytest.raises(ValidationError, match="cannot show datastream"):
                    check_mobile_widgets([widget], DATASTREAMS)


def test_a_whole_dashboard_keeps_its_order_and_defaults_are_not_stored() -> None:
    widgets = [
        w(id="relay", type="switch", pin=1),
        w(id="temp", type="chart", pin=0, w=4, h=2, period="6h"),
        w(id="mode", type="segmented", pin=4, options=two_options()),
        w(id="log", type="terminal", pin=3, w=4, h=2),
        w(id="where", type="map", pin=2),
        w(id="label", type="labeled_value", pin=0, format="Inside: /pin/ °C"),
        w(id="level", type="step", pin=5, min=0, max=10, step=2),
    ]
    check_mobile_widgets(widgets, DATASTREAMS)
    assert msgspec.to_builtins(widgets[0]) == {"id": "relay", "type": "switch", "pin": 1}


@pytest.mark.parametrize(
    ("widgets", "message"),
    [
        ([w(pin=9)], "no datastream on V9"),
        ([w(), w()], "ids must be unique"),
        ([w(id="bad id")], "ids must be unique"),
        ([w(type="slider", pin=5)], "needs a range"),
        ([w(type="gauge", pin=0, min=5, max=5)], "min must be below max"),
        ([w(type="value", pin=0, min=1)], "only a slider, step control or gauge has a range"),
        ([w(type="switch", pin=1, mode="switch")], "only a button or an image button has a mode"),
        ([w(type="segmented", pin=1)], "needs 2 to 6 options"),
        ([w(type="segmented", pin=5, options=[{"value": i, "label": str(i)} for i in range(7)])], "needs 2 to 6"),
        ([w(type="menu", pin=1, options=[{"value": 0, "label": "a"}, {"value": 0, "label": "b"}])], "its own value"),
        ([w(type="menu", pin=1, options=[{"value": 0, "label": "a"}, {"value": 2, "label": "b"}])], "outside"),
        ([w(type="switch", pin=1, options=two_options())], "only a segmented switch or a menu has options"),
        ([w(type="value", pin=0, format="/pin/")], "only a labeled value has a format"),
        ([w(type="value", pin=0, period="1d")], "only a chart has a period"),
        ([w(id=f"w{i}") for i in range(61)], "at most 60 widgets"),
    ],
)
def test_wrong_mobile_dashboards_are_refused_with_the_reason(widgets: list[MobileWidget], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_mobile_widgets(widgets, DATASTREAMS)


@pytest.mark.parametrize(
    "bad",
    [{"w": 5}, {"w": 0}, {"h": 5}, {"type": "radar"}, {"period": "2h"}, {"color": "red"}, {"x": 1}],
)
def test_the_shape_is_checked_before_the_rules(bad: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"id": "a", "type": "value", "pin": 0, **bad}, MobileWidget)


def test_an_image_button_has_both_images_and_only_it_has_images() -> None:
    check_mobile_widgets([w(type="image_button", pin=1, mode="switch", off_image=1, on_image=2)], DATASTREAMS)
    for kw, message in [
        ({"type": "image_button", "pin": 1, "off_image": 1}, "needs an image for on and one for off"),
        ({"type": "image_button", "pin": 1, "on_image": 2}, "needs an image for on and one for off"),
        ({"type": "switch", "pin": 1, "on_image": 2}, "only an image button has images"),
        ({"type": "led", "pin": 1, "mode": "switch"}, "only a button or an image button has a mode"),
    ]:
        with pytest.raises(ValidationError, match=message):
            check_mobile_widgets([w(**kw)], DATASTREAMS)
    with pytest.raises(msgspec.ValidationError):
        w(type="image_button", pin=1, off_image=0, on_image=2)
