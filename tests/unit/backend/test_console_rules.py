"""Console rules that need no server: dashboard widgets against datastreams, the sign-in
redirect target, the live socket's device list."""

from __future__ import annotations

import pytest

from backend.console.dashboards import Widget, check_widgets
from backend.errors import ValidationError
from backend.templates.models import Datastream
from console_ui.live import _device_ids
from console_ui.pages_public import safe_next

DATASTREAMS = [
    Datastream(template_id=1, pin=0, name="Temperature", type="double"),
    Datastream(template_id=1, pin=1, name="Power", type="integer"),
    Datastream(template_id=1, pin=2, name="Where", type="location"),
    Datastream(template_id=1, pin=3, name="Log", type="string"),
]


def w(**kw: object) -> Widget:
    base: dict[str, object] = {"id": "a", "type": "value", "pin": 0, "x": 0, "y": 0, "w": 3, "h": 2}
    return Widget(**{**base, **kw})  # type: ignore[arg-type]


def test_every_widget_kind_binds_to_the_datastream_types_it_can_show() -> None:
    check_widgets(
        [
            w(id="s", type="switch", pin=1),
            w(id="m", type="map", pin=2, x=3),
            w(id="t", type="terminal", pin=3, x=6),
            w(id="c", type="chart", pin=0, x=9),
        ],
        DATASTREAMS,
    )
    for kind, pin in (("map", 0), ("terminal", 1), ("chart", 3), ("gauge", 2), ("switch", 3)):
        with pytest.raises(ValidationError, match="cannot show datastream"):
            check_widgets([w(type=kind, pin=pin)], DATASTREAMS)


def test_a_button_is_push_by_default_and_may_be_a_switch() -> None:
    import msgspec

    assert w(type="button", pin=1).mode == "push"
    check_widgets([w(type="button", pin=1, mode="switch")], DATASTREAMS)
    assert "mode" not in msgspec.to_builtins(w(type="button", pin=1))  # push is not stored
    with pytest.raises(msgspec.ValidationError, match=r"\$\.mode"):
        msgspec.convert({"id": "b", "type": "button", "pin": 1, "x": 0, "y": 0, "w": 3, "h": 2, "mode": "hold"}, Widget)


@pytest.mark.parametrize(
    ("widgets", "message"),
    [
        ([w(pin=9)], "no datastream on V9"),
        ([w(x=10, w=3)], "does not fit"),
        ([w(), w(id="b", x=2)], "overlap"),
        ([w(), w()], "ids must be unique"),
        ([w(id="bad id")], "ids must be unique"),
        ([w(type="slider", min=5, max=5)], "min must be below max"),
        ([w(id=f"w{i}", y=i * 2) for i in range(101)], "at most 100 widgets"),
        ([w(type="switch", pin=1, mode="switch")], "only a button has a mode"),
    ],
)
def test_wrong_dashboards_are_refused_with_the_reason(widgets: list[Widget], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_widgets(widgets, DATASTREAMS)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/devices/3?tab=info", "/devices/3?tab=info"),
        (None, "/devices"),
        ("https://evil.example/", "/devices"),
        ("//evil.example/x", "/devices"),
        ("/\\evil.example", "/devices"),
        ("devices", "/devices"),
    ],
)
def test_after_sign_in_only_paths_of_this_site_are_followed(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_the_live_socket_takes_a_list_of_device_ids() -> None:
    assert _device_ids("3,1,3") == [1, 3]
    assert _device_ids("") is None and _device_ids("1,x") is None and _device_ids(",".join(["1"] * 1001)) is None
