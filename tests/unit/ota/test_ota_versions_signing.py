"""Versions, build dates, Ed25519 signatures and download tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ota import DownloadTokens, FirmwareVersion, SignatureError, Signer, VersionError, parse_build_date, verify
from ota.signing import signed_message


def v(text: str) -> FirmwareVersion:
    return FirmwareVersion.parse(text)


@pytest.mark.parametrize(
    "low, high",
    [
        ("0.1.2", "0.1.10"),
        ("1.2", "1.2.1"),
        ("1", "1.0.1"),
        ("v1.9.9", "2.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
        ("1.0.0-alpha.beta", "1.0.0-beta"),
        ("1.0.0-beta.2", "1.0.0-beta.11"),
        ("1.0.0-rc.1", "1.0.0"),
    ],
)
def test_semver_order(low: str, high: str) -> None:
    assert v(low) < v(high) and v(high) > v(low) and v(low) != v(high)


def test_short_forms_and_build_metadata_are_equal() -> None:
    assert v("1.2") == v("1.2.0") == v("v1.2.0+abc") and v("3") == v("3.0.0")
    assert str(v(" 1.2 ")) == "1.2"


@pytest.mark.parametrize("bad", ["", "1.2.3.4", "01.2", "a.b", "1.2-", "1." * 40])
def test_bad_versions_are_refused(bad: str) -> None:
    with pytest.raises(VersionError):
        v(bad)


_part = st.integers(0, 50)


@given(a=st.tuples(_part, _part, _part), b=st.tuples(_part, _part, _part))
def test_order_matches_tuples(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    va, vb = v(".".join(map(str, a))), v(".".join(map(str, b)))
    assert (va < vb) == (a < b) and (va == vb) == (a == b)


def test_build_dates_as_c_writes_them() -> None:
    assert parse_build_date("Jan 19 2024 12:25:30").isoformat() == "2024-01-19T12:25:30"
    assert parse_build_date("Mar  5 2024 18:29:27").day == 5
    with pytest.raises(VersionError):
        parse_build_date("2024-01-19")


class MemoryStore:
    def __init__(self) -> None:
        self.pem: bytes | None = None

    def load(self) -> bytes | None:
        return self.pem

    def save_new(self, pem: bytes) -> bytes:
        if self.pem is None:
            self.pem = pem
        return self.pem


def test_key_is_made_once_and_signatures_verify() -> None:
    store = MemoryStore()
    signer = Signer.from_store(store)
    assert Signer.from_store(store).public_key == signer.public_key  # the same key on restart
    sha = hashlib.sha256(b"image").digest()
    sig = signer.sign(sha, 5, "TMPL1", "1.0.0")
    verify(signer.public_key, sig, sha, 5, "TMPL1", "1.0.0")
    for args in [
        (sha, 6, "TMPL1", "1.0.0"),
        (sha, 5, "TMPL2", "1.0.0"),
        (sha, 5, "TMPL1", "1.0.1"),
        (hashlib.sha256(b"other").digest(), 5, "TMPL1", "1.0.0"),
    ]:
        with pytest.raises(SignatureError):
            verify(signer.public_key, sig, *args)
    with pytest.raises(SignatureError):
        verify(Signer.from_store(MemoryStore()).public_key, sig, sha, 5, "TMPL1", "1.0.0")
    assert "BEGIN PUBLIC KEY" in signer.public_pem


def test_signed_message_is_documented_json() -> None:
    sha = bytes(range(32))
    assert signed_message(sha, 7, None, "1.0") == (b'["openblynk-fw-v1","' + sha.hex().encode() + b'",7,"","1.0"]')
    with pytest.raises(SignatureError):
        signed_message(b"short", 1, None, None)


def test_unreadable_stored_key_is_reported() -> None:
    store = MemoryStore()
    store.pem = b"not a key"
    with pytest.raises(SignatureError, match="cannot be read"):
        Signer.from_store(store)


def test_download_tokens() -> None:
    tokens = DownloadTokens(b"k" * 32)
    token = tokens.issue(3, 42, 1000)
    grant = tokens.check(token, now=999)
    assert (grant.shipment_id, grant.device_id) == (3, 42)
    with pytest.raises(SignatureError, match="expired"):
        tokens.check(token, now=1001)
    for forged in [
        token.replace("3.42", "3.43", 1),
        "3.42.1000.AAAA",
        "",
        "a.b.c.d",
        token + "x",
        DownloadTokens(b"o" * 32).issue(3, 42, 1000),
    ]:
        with pytest.raises(SignatureError):
            tokens.check(forged, now=0)


def test_key_file_store_example(tmp_path: Path) -> None:
    """A file-based store (the backend's) works through the same protocol."""
    path = tmp_path / "key.pem"

    class FileStore:
        def load(self) -> bytes | None:
            return path.read_bytes() if path.exists() else None

        def save_new(self, pem: bytes) -> bytes:
            path.write_bytes(pem)
            return pem

    assert Signer.from_store(FileStore()).public_key == Signer.from_store(FileStore()).public_key
