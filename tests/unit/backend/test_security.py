"""Tokens, their HMAC and encryption, the service password, password hashing."""

import re

import pytest

from backend.errors import ValidationError
from backend.security import AuthToken, Secrets, hash_password, password_needs_rehash, verify_password


def test_generated_tokens_have_blynks_format() -> None:
    tokens = {AuthToken.generate().value for _ in range(200)}
    assert len(tokens) == 200
    assert all(re.fullmatch(r"[-_a-zA-Z0-9]{32}", t) for t in tokens)


@pytest.mark.parametrize("bad", ["short", "x" * 33, "a" * 31 + "!", "", "a" * 31 + " "])
def test_bad_tokens_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        AuthToken(bad)


def test_token_repr_does_not_leak() -> None:
    token = AuthToken("abcdefghijklmnopqrstuvwxyz012345")
    assert "qrstuv" not in repr(token)


def test_hmac_and_encryption_depend_on_the_key() -> None:
    token = AuthToken.generate()
    a, b = Secrets("key-a" * 8), Secrets("key-b" * 8)
    assert a.token_hmac(token) == a.token_hmac(token.value) != b.token_hmac(token)
    assert a.decrypt_token(a.encrypt_token(token)) == token
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        b.decrypt_token(a.encrypt_token(token))


def test_service_password() -> None:
    s = Secrets("k" * 40)
    assert s.check_service_password(s.service_password())
    assert not s.check_service_password("guess") and not s.check_service_password(None)


def test_password_hash() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong", stored)
    assert not verify_password("x", "garbage")
    assert not verify_password("x", "scrypt$garbage")
    assert not password_needs_rehash(stored)


def test_legacy_scrypt_hash_still_verifies_and_asks_for_a_rehash() -> None:
    # written by hash_password before argon2id (scrypt N=2**15, r=8, p=1), salt of 16 bytes
    import base64

    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    salt = b"0123456789abcdef"
    digest = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(b"correct horse")
    legacy = f"scrypt$32768$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("correct horse", legacy)
    assert not verify_password("wrong", legacy)
    assert password_needs_rehash(legacy) and password_needs_rehash("garbage")
