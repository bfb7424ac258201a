"""Topics for the tests of Blynk's device topic table (``broker.topics``)."""

from __future__ import annotations


def example(pattern: str) -> tuple[str, tuple[str, ...]]:
    """A topic of a table pattern, its ``<...>`` levels filled with distinct names."""
    names: list[str] = []
    levels = []
    for level in pattern.split("/"):
        if level.startswith("<"):
            names.append(f"Name {len(names)}")
            level = names[-1]
        levels.append(level)
    return "/".join(levels), tuple(names)
