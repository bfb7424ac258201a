"""Token validation and payload encoding: what goes on the wire must match Blynk's API."""

from __future__ import annotations

import json
from enum import IntEnum
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_sdk import AuthToken, DeviceError, InvalidTokenError
from device_sdk._codec import (
    check_name,
    encode_batch,
    encode_mcu_info,
    encode_scalar,
    encode_value,
    format_float,
)

TOKEN = "AbCdEfGhIjKlMnOpQrStUvWxYz01-_45"


# -- AuthToken ------------------------------------------------------------------------------


@given(st.text(alphabet="-_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=32, max_size=32))
def test_any_32_base64url_characters_are_a_token(value: str) -> None:
    assert AuthToken(value).value == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        TOKEN[:31],
        TOKEN + "x",
        TOKEN[:31] + "+",  # base64, not base64url
        TOKEN[:31] + "/",
        TOKEN[:31] + "=",
        TOKEN[:31] + " ",
        " " + TOKEN[:31],
        TOKEN[:31] + "é",
        TOKEN[:31] + "\n",
        TOKEN[:31] + "٣",  # a non-ASCII digit
    ],
)
def test_malformed_tokens_are_refused(value: str) -> None:
    with pytest.raises(InvalidTokenError):
        AuthToken(value)


def test_a_non_string_token_is_refused() -> None:
    with pytest.raises(InvalidTokenError):
        AuthToken(12345)  # type: ignore[arg-type]


def test_invalid_token_error_is_a_value_error_and_a_device_error() -> None:
    with pytest.raises(ValueError):
        AuthToken("short")
    assert issubclass(InvalidTokenError, DeviceError)


def test_token_is_a_frozen_value() -> None:
    token = AuthToken(TOKEN)
    assert token == AuthToken(TOKEN)
    assert hash(token) == hash(AuthToken(TOKEN))
    with pytest.raises(AttributeError):
        token.value = "x" * 32  # type: ignore[misc]


def test_token_never_shows_in_repr_or_str() -> None:
    token = AuthToken(TOKEN)
    assert TOKEN not in repr(token)
    assert TOKEN not in str(token)
    assert TOKEN not in f"{token}"
    assert "AbCd" in repr(token)


# -- plain-text values (ds/<name>) ----------------------------------------------------------


class Mode(IntEnum):
    AUTO = 2


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("hello", b"hello"),
        ("", b""),
        ("Zürich", "Zürich".encode()),
        (True, b"1"),
        (False, b"0"),
        (0, b"0"),
        (-17, b"-17"),
        (10**20, b"100000000000000000000"),
        (Mode.AUTO, b"2"),
        (3.1415926, b"3.1415926"),
        (0.1 + 0.2, b"0.3"),
        (21.0, b"21"),
        (-0.0, b"0"),
        (1e-7, b"1e-07"),
        (1.5e20, b"1.5e+20"),
        (Fraction(1, 4), b"0.25"),
        (b"\x00raw\xff", b"\x00raw\xff"),
        (bytearray(b"ab"), b"ab"),
        (["First", "Second", "Third"], b"First\x00Second\x00Third"),
        ((1, 2.5, True, "x"), b"1\x002.5\x001\x00x"),
        ([], b""),
    ],
)
def test_values_are_encoded_as_blynk_plain_text(value: object, wire: bytes) -> None:
    assert encode_value(value) == wire  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_numbers_are_refused(value: float) -> None:
    with pytest.raises(ValueError):
        encode_value(value)
    with pytest.raises(ValueError):
        encode_batch({"T": value})


@pytest.mark.parametrize("value", [None, {"a": 1}, [[1, 2]], object(), 1j])
def test_unsupported_values_are_a_type_error(value: object) -> None:
    with pytest.raises(TypeError):
        encode_value(value)  # type: ignore[arg-type]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_formatted_floats_parse_back_to_15_significant_digits(value: float) -> None:
    text = format_float(value)
    assert float(text) == pytest.approx(value, rel=1e-14, abs=0.0)
    assert not text.endswith(".0")


def test_scalar_encoding_checks_bool_before_int() -> None:
    assert encode_scalar(True) == "1"


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Temperature", "Set Temperature", "V1", "café", "a-b_c.d"])
def test_valid_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "a/b", "#", "a+", "a\x00b"])
def test_names_that_would_break_the_topic_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)


def test_a_non_string_name_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        check_name(5)  # type: ignore[arg-type]


# -- batch_ds and info/mcu -------------------------------------------------------------------


def test_batch_keeps_json_types_for_datastream_types() -> None:
    payload = encode_batch({"Temp": 21.5, "Count": 3, "On": True, "Label": "hi", "Where": [24.1, 56.9]})
    assert json.loads(payload) == {"Temp": 21.5, "Count": 3, "On": True, "Label": "hi", "Where": [24.1, 56.9]}
    assert b'"On":true' in payload
    assert b" " not in payload  # compact: every byte counts against Blynk's 1024-byte limit


def test_batch_refuses_bad_names_and_values() -> None:
    with pytest.raises(ValueError):
        encode_batch({"a/b": 1})
    with pytest.raises(TypeError):
        encode_batch({"a": None})  # type: ignore[dict-item]


def test_mcu_info_has_blynk_keys_and_type_defaults_to_the_template() -> None:
    payload = encode_mcu_info(
        template_id="TMPLabcd1234",
        firmware_version="0.1.2",
        build="Jan 19 2024 12:25:30",
        firmware_type=None,
        rx_buffer=1024,
    )
    assert json.loads(payload) == {
        "tmpl": "TMPLabcd1234",
        "ver": "0.1.2",
        "build": "Jan 19 2024 12:25:30",
        "type": "TMPLabcd1234",
        "rxbuff": 1024,
    }


def test_mcu_info_omits_unset_keys_and_honours_an_explicit_type() -> None:
    assert json.loads(
        encode_mcu_info(template_id=None, firmware_version="1.0", build=None, firmware_type=None, rx_buffer=512)
    ) == {"ver": "1.0", "rxbuff": 512}
    assert (
        json.loads(
            encode_mcu_info(template_id="TMPL1", firmware_version="1.0", build=None, firmware_type="ESP32", rx_buffer=1)
        )["type"]
        == "ESP32"
    )
