"""What a webhook sends: its method, URL, headers and body, rendered from Blynk's placeholders.

Three body kinds, as Blynk's editor has them: ``form`` (a URL-encoded form written as
``key={PLACEHOLDER}&...``; values are percent-encoded), ``json`` (a JSON text; values are
put in JSON-escaped, so a quote in a device name cannot break the document) and ``plain``
(text as written). Placeholders in the URL are percent-encoded; header values are put in as
text (line breaks removed).

Blynk's limits are checked twice: a body template whose rendered body could exceed
:data:`MAX_BODY_BYTES` with the longest values its placeholders can take is refused when
saved (:func:`check`), and a rendered body over the limit is refused when sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import quote, quote_plus, urlsplit

from backend.errors import ValidationError
from backend.placeholders import PLACEHOLDER, render

MAX_BODY_BYTES = 5 * 1024
"""Blynk's limit on a webhook's body."""
MAX_RESPONSE_BYTES = 16 * 1024
"""Blynk's limit on what is read of a webhook's response."""
MAX_HEADERS = 20
METHODS = ("GET", "POST", "PUT", "DELETE")
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "accept-encoding", "upgrade", "te"}
)
"""Headers the sender sets itself; ``X-Openblynk-*`` are reserved too."""


class BodyKind(StrEnum):
    """How the body template is read."""

    FORM = "form"
    JSON = "json"
    PLAIN = "plain"


CONTENT_TYPES = {
    BodyKind.FORM: "application/x-www-form-urlencoded",
    BodyKind.JSON: "application/json",
    BodyKind.PLAIN: "text/plain; charset=utf-8",
}
_EXPANSION = {BodyKind.FORM: 3, BodyKind.JSON: 2, BodyKind.PLAIN: 1}
"""The most bytes one byte of a value can become in a body of each kind (``%XX``; ``\\"``)."""
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters put in a JSON body as spaces (each would take six bytes as ``\\u00XX``);
tabs and line breaks stay (two bytes escaped)."""


BLYNK_NAMES = {
    "device_id": "DEVICE_ID",
    "device_name": "DEVICE_NAME",
    "device_templateId": "TEMPLATE_ID",
    "device_templateName": "TEMPLATE_NAME",
    "dataStream_name": "DATASTREAM_NAME",
    "dataStream_pin": "DATASTREAM_PIN",
    "dataStream_value": "TRIGGER_VALUE",
    "user_email": "USER_EMAIL",
    "user_name": "USER_NAME",
    "org_name": "ORG_NAME",
}
"""Blynk's lower-case webhook placeholders (its web form's ``{device_name}``...), each the same
value as one of ours."""


def with_blynk_names(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` and, for each of them Blynk has a lower-case name for, that name too."""
    out = dict(values)
    for blynk, ours in BLYNK_NAMES.items():
        if ours in values:
            out.setdefault(blynk, values[ours])
    return out


def placeholder_sizes(string_max_bytes: int) -> dict[str, int]:
    """The most bytes each placeholder a webhook knows can be replaced with (UTF-8)."""
    sizes = _sizes(string_max_bytes)
    return {**sizes, **{blynk: sizes[ours] for blynk, ours in BLYNK_NAMES.items()}}


def _sizes(string_max_bytes: int) -> dict[str, int]:
    return {
        "DEVICE_ID": 20,
        "DEVICE_NAME": 50 * 4,
        "TEMPLATE_ID": 12,
        "TEMPLATE_NAME": 100 * 4,
        "PRODUCT_NAME": 100 * 4,
        "ORG_ID": 20,
        "ORG_NAME": 100 * 4,
        "DATASTREAM_NAME": 64 * 4,
        "DATASTREAM_PIN": 3,
        "TRIGGER_VALUE": max(string_max_bytes, 64),
        "TIMESTAMP": 32,
        "USER_ID": 20,
        "USER_EMAIL": 254 * 4,
        "USER_NAME": 100 * 4,
        "WEBHOOK_NAME": 100 * 4,
        "EVENT_CODE": 64 * 4,
        "EVENT_DESCRIPTION": 300 * 4,
    }


SAMPLE: dict[str, str] = {
    "DEVICE_ID": "1",
    "DEVICE_NAME": "Sample device",
    "TEMPLATE_ID": "TMPL0000sample",
    "TEMPLATE_NAME": "Sample template",
    "PRODUCT_NAME": "Sample template",
    "ORG_ID": "1",
    "ORG_NAME": "Sample organization",
    "DATASTREAM_NAME": "Temperature",
    "DATASTREAM_PIN": "0",
    "TRIGGER_VALUE": "23.5",
    "TIMESTAMP": "2026-01-01T00:00:00+00:00",
    "USER_ID": "1",
    "USER_EMAIL": "someone@example.com",
    "USER_NAME": "Someone",
    "EVENT_CODE": "sample_event",
    "EVENT_DESCRIPTION": "a sample event",
}
"""Values of the console's "send test" (and of the JSON check of a template when saved)."""


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """A webhook's request as written, placeholders and all."""

    method: str
    url: str
    headers: Mapping[str, str]
    body_kind: BodyKind
    body_template: str


@dataclass(frozen=True, slots=True)
class Rendered:
    """A request ready to send."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def _escaped(kind: BodyKind, values: Mapping[str, str]) -> dict[str, str]:
    if kind is BodyKind.JSON:
        return {k: json.dumps(_CONTROL.sub(" ", v), ensure_ascii=False)[1:-1] for k, v in values.items()}
    if kind is BodyKind.FORM:
        return {k: quote_plus(v) for k, v in values.items()}
    return dict(values)


def render_request(spec: RequestSpec, values: Mapping[str, str]) -> Rendered:
    """``spec`` with ``values`` put in, each escaped for where it goes."""
    url = render(spec.url, {k: quote(v, safe="") for k, v in values.items()})
    headers = {
        name: render(value, values).replace("\r", " ").replace("\n", " ") for name, value in spec.headers.items()
    }
    body = b""
    if spec.method != "GET":
        body = render(spec.body_template, _escaped(spec.body_kind, values)).encode()
        if body:
            headers["Content-Type"] = CONTENT_TYPES[spec.body_kind]
    return Rendered(spec.method, url, headers, body)


def worst_body_bytes(kind: BodyKind, template: str, sizes: Mapping[str, int]) -> int:
    """The most bytes the body of ``template`` can take: each placeholder at its longest value,
    escaped; a placeholder the webhook does not know stays as written."""
    total = len(template.encode())
    for match in PLACEHOLDER.finditer(template):
        size = sizes.get(match.group(1))
        if size is not None:
            total += size * _EXPANSION[kind] - len(match.group(0).encode())
    return total


def check(spec: RequestSpec, sizes: Mapping[str, int]) -> None:
    """Refuse a request that cannot be sent as written (``ValidationError`` saying why)."""
    if spec.method not in METHODS:
        raise ValidationError(f"the method must be one of {', '.join(METHODS)}")
    parts = urlsplit(spec.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("the URL must start with http:// or https:// and name a host")
    if PLACEHOLDER.search(parts.netloc):
        raise ValidationError("placeholders may be used in the URL's path and query, not in its host")
    if parts.username or parts.password:
        raise ValidationError("put credentials in a header (Authorization), not in the URL")
    if len(spec.headers) > MAX_HEADERS:
        raise ValidationError(f"at most {MAX_HEADERS} headers")
    for name in spec.headers:
        low = name.lower()
        if not name or not name.isascii() or any(c in name for c in ' :\r\n\t"(),/;<=>?@[\\]{}'):
            raise ValidationError(f"{name!r} is not a header name")
        if low in RESERVED_HEADERS or low.startswith("x-openblynk-"):
            raise ValidationError(f"the {name} header is set by the server")
    if spec.method == "GET" and spec.body_template:
        raise ValidationError("a GET request has no body: put the values in the URL's query")
    worst = worst_body_bytes(spec.body_kind, spec.body_template, sizes)
    if worst > MAX_BODY_BYTES:
        raise ValidationError(
            f"the body can reach {worst} bytes with the longest values of its placeholders; "
            f"the limit is {MAX_BODY_BYTES} (5 KB)"
        )
    if spec.body_kind is BodyKind.JSON and spec.body_template:
        try:
            json.loads(render(spec.body_template, _escaped(BodyKind.JSON, SAMPLE)))
        except ValueError as exc:
            raise ValidationError(f"the body is not JSON with sample values put in: {exc}") from exc
