"""Widget property rules: a colour property holds a hex colour or nothing, so what reaches a
page's style is a colour; other properties are text."""

from __future__ import annotations

import pytest

from backend.devices.properties import COLOR_PROPERTIES, MAX_PROPERTY_BYTES, check_property
from backend.errors import ValidationError


@pytest.mark.parametrize("value", ["#D3435C", "#d3435c", "#fff", "#D3435C80", ""])
@pytest.mark.parametrize("name", sorted(COLOR_PROPERTIES))
def test_hex_colours_are_taken(name: str, value: str) -> None:
    check_property(name, value)  # raises ValidationError if refused
    with pytest.raises(ValidationError, match="must be a colour"):
        check_property(name, value + ";color:red")  # the same with a declaration after it is not


@pytest.mark.parametrize(
    "value",
    [
        "red",
        "url(https://evil.example/x.png)",
        "#fff; background: url(//evil.example/x)",
        "var(--x)",
        "#12345",
        "#GGGGGG",
        "#D3435C\n",
        "expression(alert(1))",
    ],
)
def test_anything_else_is_refused_as_a_colour(value: str) -> None:
    with pytest.raises(ValidationError, match="must be a colour"):
        check_property("color", value)


def test_a_label_is_any_text_up_to_the_size_limit() -> None:
    check_property("label", '<img src=x onerror="alert(1)">')  # raises ValidationError if refused
    with pytest.raises(ValidationError, match="longer than"):
        check_property("label", "x" * (MAX_PROPERTY_BYTES + 1))
