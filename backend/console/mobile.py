"""A template's mobile dashboard (Blynk's "Mobile dashboard"): an ordered list of widgets on a
phone-width grid of :data:`COLUMNS` columns, each bound to a datastream, shown in the app
(``/app``) for every device of the template.

One document per template (``template_mobile_dashboard``). Unlike the web dashboard, widgets
have no place of their own: the app lays them out in list order, each ``w`` columns wide and
``h`` rows high, which is how a phone column is edited comfortably (and with a keyboard). When
saved, each widget is checked against the template's datastreams: its datastream must exist and
have a type the widget can show, and its settings must suit its type.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.console.dashboards import bound_widgets
from backend.db.sql import execute, fetch_all, fetch_one
from backend.errors import ValidationError
from backend.templates.models import Datastream

COLUMNS = 4
MAX_WIDGETS = 60
MobileWidgetType = Literal[
    "switch",
    "button",
    "image_button",
    "slider",
    "step",
    "value",
    "labeled_value",
    "gauge",
    "led",
    "chart",
    "segmented",
    "menu",
    "terminal",
    "map",
]
NUMBER = frozenset({"integer", "double"})
NUMERIC = NUMBER | {"enum"}
ACCEPTS: dict[str, frozenset[str]] = {
    "switch": NUMERIC,
    "button": NUMERIC,
    "image_button": NUMERIC,
    "slider": NUMBER,
    "step": NUMBER,
    "value": NUMERIC | {"string", "location"},
    "labeled_value": NUMERIC | {"string"},
    "gauge": NUMBER,
    "led": NUMERIC,
    "chart": NUMBER,
    "segmented": frozenset({"integer", "enum"}),
    "menu": frozenset({"integer", "enum"}),
    "terminal": frozenset({"string"}),
    "map": frozenset({"location"}),
}
"""Datastream types each widget can be bound to."""
OPTIONS = {"segmented": (2, 6), "menu": (2, 50)}
"""Widgets that choose among options, with how many they take (at least, at most)."""
RANGED = frozenset({"slider", "step", "gauge"})
PRESSED = frozenset({"button", "image_button"})
"""Widgets with a mode (push or switch)."""
Period = Literal["15m", "1h", "6h", "1d", "1w"]


class Choice(msgspec.Struct, forbid_unknown_fields=True):
    """One option of a segmented switch or a menu: the value written and the label shown."""

    value: int
    label: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class MobileWidget(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One widget: ``{"id": "relay", "type": "switch", "pin": 1, "w": 2, "h": 1}``.

    ``on``/``off`` are what a switch or button writes (1 and 0); a button's ``mode`` is push
    (``on`` while pressed) or switch (flips at each press); an image button (Blynk's Image
    Button) is a button showing ``off_image`` or ``on_image``, ids of images in the template's
    organization's image library (``backend.console.images``); ``min``/``max``/``step`` override the
    datastream's range for sliders, step controls and gauges; ``options`` are a segmented
    switch's or menu's choices; ``format`` is a labeled value's text, ``/pin/`` standing for the
    value (``"Inside: /pin/ °C"``); ``period`` is how much history a chart shows before its live
    values.
    """

    id: str
    type: MobileWidgetType
    pin: Annotated[int, msgspec.Meta(ge=0, le=255)]
    w: Annotated[int, msgspec.Meta(ge=1, le=COLUMNS)] = 2
    h: Annotated[int, msgspec.Meta(ge=1, le=4)] = 1
    title: Annotated[str, msgspec.Meta(max_length=60)] = ""
    on: Annotated[str, msgspec.Meta(max_length=40)] = "1"
    off: Annotated[str, msgspec.Meta(max_length=40)] = "0"
    mode: Literal["push", "switch"] = "push"
    min: float | None = None
    max: float | None = None
    step: Annotated[float, msgspec.Meta(gt=0)] | None = None
    options: Annotated[list[Choice], msgspec.Meta(max_length=50)] = []
    format: Annotated[str, msgspec.Meta(max_length=60)] = ""
    period: Period = "1h"
    color: Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None
    on_image: Annotated[int, msgspec.Meta(ge=1)] | None = None
    off_image: Annotated[int, msgspec.Meta(ge=1)] | None = None


class MobileDashboardIn(msgspec.Struct, forbid_unknown_fields=True):
    """What the editor saves."""

    widgets: list[MobileWidget]


def check_mobile_widgets(widgets: list[MobileWidget], datastreams: list[Datastream]) -> None:
    """Raise ValidationError naming the first widget that is wrong, and why."""
    for label, w, ds in bound_widgets(widgets, datastreams, ACCEPTS, MAX_WIDGETS, "mobile dashboard"):
        _check_settings(label, w, ds)


def _check_settings(label: str, w: MobileWidget, ds: Datastream) -> None:
    if w.mode != "push" and w.type not in PRESSED:
        raise ValidationError(f"{label}: only a button or an image button has a mode (push or switch)")
    if w.type == "image_button" and (w.on_image is None or w.off_image is None):
        raise ValidationError(f"{label}: needs an image for on and one for off (upload them to the image library)")
    if w.type != "image_button" and (w.on_image is not None or w.off_image is not None):
        raise ValidationError(f"{label}: only an image button has images")
    if (w.min is not None or w.max is not None or w.step is not None) and w.type not in RANGED:
        raise ValidationError(f"{label}: only a slider, step control or gauge has a range")
    lo = w.min if w.min is not None else ds.min
    hi = w.max if w.max is not None else ds.max
    if w.type in RANGED and (lo is None or hi is None):
        raise ValidationError(f"{label}: needs a range: set min and max here or on datastream {ds.name!r}")
    if lo is not None and hi is not None and w.type in RANGED and lo >= hi:
        raise ValidationError(f"{label}: min must be below max")
    if w.format and w.type != "labeled_value":
        raise ValidationError(f"{label}: only a labeled value has a format")
    if w.period != "1h" and w.type != "chart":
        raise ValidationError(f"{label}: only a chart has a period")
    _check_options(label, w, ds)


def _check_options(label: str, w: MobileWidget, ds: Datastream) -> None:
    bounds = OPTIONS.get(w.type)
    if bounds is None:
        if w.options:
            raise ValidationError(f"{label}: only a segmented switch or a menu has options")
        return
    least, most = bounds
    if not least <= len(w.options) <= most:
        raise ValidationError(f"{label}: needs {least} to {most} options")
    values = [o.value for o in w.options]
    if len(set(values)) != len(values):
        raise ValidationError(f"{label}: each option needs its own value")
    outside = [v for v in values if (ds.min is not None and v < ds.min) or (ds.max is not None and v > ds.max)]
    if outside:
        raise ValidationError(f"{label}: option value {outside[0]} is outside datastream {ds.name!r}'s range")


class MobileDashboardService:
    """Reading and saving mobile dashboards (the caller has checked the template is in scope,
    or, for the app, that the user may see a device of it)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, template_id: int) -> list[MobileWidget]:
        """The template's widgets in order (none for a template never edited)."""
        row = await fetch_one(
            self.session, "SELECT widgets FROM template_mobile_dashboard WHERE template_id = :t", t=template_id
        )
        return msgspec.convert(row["widgets"], list[MobileWidget]) if row else []

    async def save(
        self,
        principal: Principal | None,
        template_id: int,
        widgets: list[MobileWidget],
        datastreams: list[Datastream],
    ) -> list[MobileWidget]:
        """Check and store the widgets in their order; every device of the template shows them."""
        check_mobile_widgets(widgets, datastreams)
        await self._check_images(template_id, widgets)
        await execute(
            self.session,
            """
            INSERT INTO template_mobile_dashboard (template_id, widgets, updated_at, updated_by)
            VALUES (:t, CAST(:w AS jsonb), now(), :u)
            ON CONFLICT (template_id) DO UPDATE SET widgets = EXCLUDED.widgets, updated_at = now(),
                updated_by = EXCLUDED.updated_by""",
            t=template_id,
            w=msgspec.json.encode(widgets).decode(),
            u=principal.user_id if principal else None,
        )
        return await self.get(template_id)

    async def _check_images(self, template_id: int, widgets: list[MobileWidget]) -> None:
        """Image buttons show images of the template's organization's library only: every user
        who sees a device of the template may see those (``ImageLibrary.content``)."""
        wanted = [(w, i) for w in widgets for i in (w.off_image, w.on_image) if i is not None]
        if not wanted:
            return
        rows = await fetch_all(
            self.session,
            """SELECT i.id FROM console_image i JOIN template t ON t.org_id = i.org_id
               WHERE t.id = :t AND i.id = ANY(:ids)""",
            t=template_id,
            ids=sorted({i for _w, i in wanted}),
        )
        found = {int(r["id"]) for r in rows}
        for w, i in wanted:
            if i not in found:
                raise ValidationError(
                    f"widget {w.title or w.id!r} (image_button): image {i} is not in the image library "
                    "of the template's organization"
                )
