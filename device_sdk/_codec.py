"""Payload encoding for Blynk's MQTT device API (plain-text values, ``batch_ds``, ``info/mcu``)."""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence

Scalar = str | int | float | bool
"""A single datastream value."""

Value = Scalar | bytes | Sequence[Scalar]
"""What :meth:`Device.write` accepts: a scalar, raw bytes, or a multi-value sequence."""

_FORBIDDEN_IN_NAMES = frozenset("/#+\0")


def check_name(name: str, what: str = "datastream name") -> str:
    """Return ``name`` if it can be the last level of a Blynk topic, else raise.

    Blynk names may contain spaces (``ds/Set Temperature``) but not ``/`` (a topic level
    separator), the MQTT wildcards ``#`` and ``+``, or NUL.
    """
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, not {type(name).__name__}")
    if not name:
        raise ValueError(f"{what} must not be empty")
    bad = sorted(_FORBIDDEN_IN_NAMES.intersection(name))
    if bad:
        raise ValueError(f"{what} {name!r} must not contain {', '.join(map(repr, bad))}")
    return name


def format_float(value: float) -> str:
    """Format a float as short plain text: 15 significant digits, no ``.0`` noise.

    ``0.1 + 0.2`` becomes ``"0.3"``, ``21.0`` becomes ``"21"``.
    """
    if not math.isfinite(value):
        raise ValueError(f"cannot send a non-finite number ({value!r}) as a datastream value")
    text = format(value, ".15g")
    if math.isinf(float(text)):  # rounding up pushed a value near float max over the edge
        return repr(value)
    return "0" if text == "-0" else text


def encode_scalar(value: Scalar) -> str:
    """Encode one value as Blynk plain text: bool as ``1``/``0``, numbers in decimal."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return format_float(float(value))
    raise TypeError(f"cannot send {type(value).__name__} as a datastream value")


def encode_value(value: Value) -> bytes:
    """Encode a ``ds/<name>`` payload.

    Scalars become plain text (see :func:`encode_scalar`); ``bytes`` pass through unchanged; a
    sequence (list, tuple) becomes a multi-value payload with NUL-separated items.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "\0".join(encode_scalar(item) for item in value).encode()
    return encode_scalar(value).encode()


def _json_value(name: str, value: object) -> object:
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise ValueError(f"{name}: cannot send a non-finite number ({value!r})")
        return float(value)
    if isinstance(value, (list, tuple)):  # Location: [lon, lat]
        return [_json_value(name, item) for item in value]
    raise TypeError(f"{name}: cannot send {type(value).__name__} in a batch")


def encode_batch(values: Mapping[str, Value]) -> bytes:
    """Encode a ``batch_ds`` payload: a JSON object of datastream name to value.

    JSON types carry the datastream type: string, number, ``true``/``false`` (Boolean) and
    ``[lon, lat]`` (Location).
    """
    body = {check_name(name): _json_value(name, value) for name, value in values.items()}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def encode_mcu_info(
    *,
    template_id: str | None,
    firmware_version: str,
    build: str | None,
    firmware_type: str | None,
    rx_buffer: int,
) -> bytes:
    """Encode the ``info/mcu`` JSON a device publishes on every connection (unset keys omitted)."""
    info = {
        "tmpl": template_id,
        "ver": firmware_version,
        "build": build,
        "type": firmware_type or template_id,
        "rxbuff": rx_buffer,
    }
    return json.dumps(
        {key: value for key, value in info.items() if value is not None},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
