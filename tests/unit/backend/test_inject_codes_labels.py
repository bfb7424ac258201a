"""Claim codes (format, randomness, masking), the QR label sheet (escaping, links) and the
headless claim window's proof as the device library makes it and the server checks it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from backend.db.changes import Change
from backend.devices.signals import DeviceSignals
from backend.errors import ValidationError
from backend.inject.activation import activation_listener
from backend.inject.codes import ClaimCode
from backend.inject.labels import claim_link, label_sheet
from backend.inject.static_tokens import Issued, StaticToken
from backend.inject.windows import claim_proof
from backend.security import AuthToken
from device_sdk._claim import claim_open_payload, new_pin


def test_a_claim_code_is_sqr_and_28_random_characters_and_hides_itself() -> None:
    codes = {ClaimCode.generate().value for _ in range(1000)}
    assert len(codes) == 1000
    for code in codes:
        assert code.startswith("sqr_") and len(code) == 32
        assert ClaimCode.parse(f"  {code}\n") == ClaimCode(code)
    one = ClaimCode.generate()
    assert one.value[6:] not in repr(one)
    assert AuthToken(one.value) == one.sealed()


@pytest.mark.parametrize(
    "text", ["", "sqr_short", "SQR_" + "a" * 28, "a" * 32, "sqr_" + "a" * 27 + "!", "sqr_" + "a" * 29]
)
def test_what_is_no_claim_code(text: str) -> None:
    assert ClaimCode.parse(text) is None
    with pytest.raises(ValidationError):
        ClaimCode(text)


def _issued(meta: dict[str, str], template: str = "Lamp") -> Issued:
    token = StaticToken(1, 1, 1, "TMPL1", template, meta, None, None, None, None, datetime.now(UTC))
    return Issued(token, AuthToken.generate(), ClaimCode.generate())


def test_labels_show_every_text_as_text() -> None:
    hostile = "<img src=x onerror=alert(1)>"
    sheet = label_sheet([_issued({"Serial": hostile}, template=hostile)])
    assert "<img" not in sheet and "&lt;img src=x onerror=alert(1)&gt;" in sheet
    assert sheet.count('class="segno"') == 1


def test_a_sheet_holds_24_labels_a_page() -> None:
    sheet = label_sheet([_issued({}) for _ in range(25)])
    assert sheet.count('class="segno"') == 25
    assert 'height="2245"' in sheet  # two A4 pages stacked (297 mm at 96 dpi, twice)


def test_the_qr_code_holds_the_claim_link_when_the_server_has_a_public_url() -> None:
    assert claim_link("sqr_x", "https://iot.example") == "https://iot.example/claim?code=sqr_x"
    assert claim_link("sqr_x", "") == "sqr_x"


def test_the_device_library_proves_a_claim_window_as_the_server_checks_it() -> None:
    code = ClaimCode.generate().value
    pin = new_pin()
    doc = json.loads(claim_open_payload(code, pin, 300))
    assert len(pin) == 6 and pin.isdigit()
    assert doc == {"pin": pin, "proof": claim_proof(code, pin), "ttl": 300}
    assert claim_proof(ClaimCode.generate().value, pin) != doc["proof"]
    with pytest.raises(ValueError):
        claim_open_payload(code, pin, 601)


async def test_an_activation_notice_reaches_the_apps_device_signals() -> None:
    signals = DeviceSignals()
    heard: list[int] = []
    signals.on_activated(heard.append)
    listener = activation_listener(signals)
    await listener(Change("device", 7))
    await listener(Change("activated", 8))
    assert heard == [8]
    assert Change.decode("activated:8") == Change("activated", 8)
