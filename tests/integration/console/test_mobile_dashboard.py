"""A template's mobile dashboard (issue #19 item 2) against the real app: saved in the editor's
order and checked against the template's datastreams, its widgets go with a deleted datastream,
and the app's device answer carries it for every device of the template."""

from __future__ import annotations

from tests.integration.console.test_console_api import error, make_device, make_template
from tests.support.accounts import Api

GOOD = [
    {"id": "temp", "type": "chart", "pin": 0, "w": 4, "h": 2, "period": "15m", "title": "Inside"},
    {"id": "relay", "type": "switch", "pin": 1},
    {"id": "where", "type": "map", "pin": 2, "w": 4},
    {"id": "level", "type": "gauge", "pin": 0},
]


def test_a_mobile_dashboard_is_saved_in_order_and_checked(admin: Api) -> None:
    tid = make_template(admin)["id"]
    url = f"/api/console/templates/{tid}/mobile-dashboard"
    assert admin.get(url).json() == {"template_id": tid, "widgets": []}
    r = admin.put(url, json={"widgets": GOOD})
    assert r.status_code == 200, r.text
    saved = admin.get(url).json()["widgets"]
    assert [w["id"] for w in saved] == ["temp", "relay", "where", "level"]  # the editor's order, not sorted
    assert saved[1] == {"id": "relay", "type": "switch", "pin": 1}  # defaults are not stored
    for widget, message in [
        ({"id": "x", "type": "map", "pin": 1}, "cannot show datastream 'Power' of type integer"),
        ({"id": "x", "type": "switch", "pin": 9}, "no datastream on V9"),
        ({"id": "relay", "type": "led", "pin": 1}, "ids must be unique"),
        ({"id": "x", "type": "segmented", "pin": 1, "options": [{"value": 0, "label": "Off"}]}, "2 to 6 options"),
        ({"id": "x", "type": "switch", "pin": 1, "w": 5}, "w"),
    ]:
        r = admin.put(url, json={"widgets": [*GOOD, widget]})
        assert r.status_code == 400 and message in error(r), (widget, r.text)
    assert [w["id"] for w in admin.get(url).json()["widgets"]] == ["temp", "relay", "where", "level"]
    assert admin.get(f"/templates/{tid}?tab=mobile").status_code == 200

    r = admin.delete(f"/api/console/templates/{tid}/datastreams/2")  # its widget goes with it
    assert r.status_code == 200, r.text
    assert [w["id"] for w in admin.get(url).json()["widgets"]] == ["temp", "relay", "level"]

    device = make_device(admin, tid)
    detail = admin.get(f"/app/api/devices/{device.id}").json()
    assert [w["id"] for w in detail["dashboard"]] == ["temp", "relay", "level"]
    assert detail["dashboard"][0]["period"] == "15m"
