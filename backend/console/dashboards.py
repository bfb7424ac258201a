"""A template's web dashboard: widgets placed on a 12-column grid, each bound to a datastream.

One document per template (``template_dashboard``), rendered for every device of the template.
A widget is checked against the template's datastreams when saved: its datastream must exist
and have a type the widget can show (a switch needs a number, a map a location, a terminal
text), and it must fit the grid.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Literal, Protocol, TypeVar

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.permissions import Principal
from backend.db.sql import execute, fetch_one
from backend.errors import ValidationError
from backend.templates.models import Datastream

COLUMNS = 12
MAX_ROWS = 200
MAX_WIDGETS = 100
WidgetType = Literal["switch", "button", "slider", "numeric_input", "value", "gauge", "led", "terminal", "chart", "map"]
NUMERIC = frozenset({"integer", "double", "enum"})
ACCEPTS: dict[str, frozenset[str]] = {
    "switch": NUMERIC,
    "button": NUMERIC,
    "slider": frozenset({"integer", "double"}),
    "numeric_input": frozenset({"integer", "double"}),
    "gauge": frozenset({"integer", "double"}),
    "led": NUMERIC,
    "chart": frozenset({"integer", "double"}),
    "terminal": frozenset({"string"}),
    "value": frozenset({"integer", "double", "enum", "string", "location"}),
    "map": frozenset({"location"}),
}
"""Datastream types each widget can be bound to."""
_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")


class Widget(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One widget: ``{"id": "w1", "type": "switch", "pin": 1, "x": 0, "y": 0, "w": 3, "h": 2}``.

    ``on``/``off`` are the values a switch or button writes (1 and 0 by default); a button's
    ``mode`` is Blynk's: ``push`` writes ``on`` while pressed and ``off`` when let go, ``switch``
    flips between them at each press; ``min``,
    ``max`` and ``step`` override the datastream's range for sliders, numeric inputs and gauges.
    """

    id: str
    type: WidgetType
    pin: Annotated[int, msgspec.Meta(ge=0, le=255)]
    x: Annotated[int, msgspec.Meta(ge=0, lt=COLUMNS)]
    y: Annotated[int, msgspec.Meta(ge=0, lt=MAX_ROWS)]
    w: Annotated[int, msgspec.Meta(ge=1, le=COLUMNS)]
    h: Annotated[int, msgspec.Meta(ge=1, le=12)]
    title: Annotated[str, msgspec.Meta(max_length=60)] = ""
    on: Annotated[str, msgspec.Meta(max_length=40)] = "1"
    off: Annotated[str, msgspec.Meta(max_length=40)] = "0"
    mode: Literal["push", "switch"] = "push"
    min: float | None = None
    max: float | None = None
    step: Annotated[float, msgspec.Meta(gt=0)] | None = None
    color: Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None


class DashboardIn(msgspec.Struct, forbid_unknown_fields=True):
    """What the editor saves."""

    widgets: list[Widget]


class Bound(Protocol):
    """What every dashboard's widget has (web :class:`Widget`, ``backend.console.mobile.MobileWidget``)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def pin(self) -> int: ...


W = TypeVar("W", bound=Bound)


def bound_widgets(
    widgets: list[W], datastreams: list[Datastream], accepts: Mapping[str, frozenset[str]], limit: int, noun: str
) -> Iterator[tuple[str, W, Datastream]]:
    """The checks a web and a mobile dashboard share: at most ``limit`` widgets, unique ids,
    each bound to a datastream of the template of a type it ``accepts``. Yields each widget
    with its label (for messages) and its datastream, for the dashboard's own checks; raises
    ValidationError naming the first widget that is wrong, and why."""
    if len(widgets) > limit:
        raise ValidationError(f"a {noun} holds at most {limit} widgets")
    by_pin = {d.pin: d for d in datastreams}
    seen: set[str] = set()
    for w in widgets:
        label = f"widget {w.title or w.id!r} ({w.type})"
        if not _ID.match(w.id) or w.id in seen:
            raise ValidationError(f"{label}: ids must be unique, 1-40 letters, digits, '-' or '_'")
        seen.add(w.id)
        ds = by_pin.get(w.pin)
        if ds is None:
            raise ValidationError(f"{label}: the template has no datastream on V{w.pin}")
        if ds.type not in accepts[w.type]:
            raise ValidationError(
                f"{label}: cannot show datastream {ds.name!r} of type {ds.type} "
                f"(needs {' or '.join(sorted(accepts[w.type]))})"
            )
        yield label, w, ds


def check_widgets(widgets: list[Widget], datastreams: list[Datastream]) -> None:
    """Raise ValidationError naming the first widget that is wrong, and why."""
    for label, w, _ds in bound_widgets(widgets, datastreams, ACCEPTS, MAX_WIDGETS, "dashboard"):
        if w.x + w.w > COLUMNS:
            raise ValidationError(f"{label}: does not fit the {COLUMNS}-column grid (x + w > {COLUMNS})")
        if w.mode != "push" and w.type != "button":
            raise ValidationError(f"{label}: only a button has a mode (push or switch)")
        if w.min is not None and w.max is not None and w.min >= w.max:
            raise ValidationError(f"{label}: min must be below max")
    _check_overlaps(widgets)


def _check_overlaps(widgets: list[Widget]) -> None:
    taken: dict[tuple[int, int], Widget] = {}
    for w in widgets:
        for cx in range(w.x, w.x + w.w):
            for cy in range(w.y, w.y + w.h):
                other = taken.get((cx, cy))
                if other is not None:
                    raise ValidationError(f"widgets {other.title or other.id!r} and {w.title or w.id!r} overlap")
                taken[(cx, cy)] = w


class DashboardService:
    """Reading and saving web dashboards (the caller has checked the template is in scope)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, template_id: int) -> list[Widget]:
        """The template's widgets (none for a template never edited)."""
        row = await fetch_one(
            self.session, "SELECT widgets FROM template_dashboard WHERE template_id = :t", t=template_id
        )
        return msgspec.convert(row["widgets"], list[Widget]) if row else []

    async def save(
        self, principal: Principal | None, template_id: int, widgets: list[Widget], datastreams: list[Datastream]
    ) -> list[Widget]:
        """Check and store the widgets; every device of the template shows them from now on.

        ``principal`` is who saved them (None for ``openblynk import``, which has no user)."""
        check_widgets(widgets, datastreams)
        doc = msgspec.json.encode(sorted(widgets, key=lambda w: (w.y, w.x))).decode()
        await execute(
            self.session,
            """
            INSERT INTO template_dashboard (template_id, widgets, updated_at, updated_by)
            VALUES (:t, CAST(:w AS jsonb), now(), :u)
            ON CONFLICT (template_id) DO UPDATE SET widgets = EXCLUDED.widgets, updated_at = now(),
                updated_by = EXCLUDED.updated_by""",
            t=template_id,
            w=doc,
            u=principal.user_id if principal else None,
        )
        return await self.get(template_id)
