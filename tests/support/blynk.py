"""Blynk's wire shapes, as tests compare answers against them."""

from __future__ import annotations

from typing import Any


def blynk_error(message: str) -> dict[str, Any]:
    """The JSON body of Blynk's HTTP API errors: ``{"error": {"message": ...}}``."""
    return {"error": {"message": message}}
