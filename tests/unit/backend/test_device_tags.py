"""Device tag rules, with no server: trimmed, 1-64 characters, no control characters, at most 32
a device, duplicates dropped, sorted."""

from __future__ import annotations

import pytest

from backend.devices.tags import MAX_TAGS, check_tag, check_tags
from backend.errors import ValidationError


def test_tags_are_trimmed_deduplicated_and_sorted() -> None:
    assert check_tags(["  Floor 2 ", "Floor 1", "Floor 2", "b", "B", "Zone é"]) == [
        "B",
        "Floor 1",
        "Floor 2",
        "Zone é",
        "b",
    ]
    assert check_tags([]) == []
    assert check_tag("x" * 64 + "  ") == "x" * 64


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "cannot be empty"),
        ("   ", "cannot be empty"),
        ("x" * 65, "65 characters long; a tag has at most 64"),
        ("line\nbreak", "control character U+000A"),
        ("tab\there", "control character U+0009"),
        ("nul\x00", "control character U+0000"),
        ("del\x7f", "control character U+007F"),
        ("c1\x85c", "control character U+0085"),
    ],
)
def test_bad_tags_are_refused_with_the_rule(bad: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("+", r"\+")):
        check_tags(["fine", bad])


def test_at_most_32_tags_a_device() -> None:
    assert len(check_tags([f"t{i}" for i in range(MAX_TAGS)] + ["t0"])) == MAX_TAGS
    with pytest.raises(ValidationError, match="at most 32 tags \\(33 given\\)"):
        check_tags([f"t{i}" for i in range(MAX_TAGS + 1)])
