"""The device auth token as a value object."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._exceptions import InvalidTokenError

_TOKEN_RE = re.compile(r"[-_a-zA-Z0-9]{32}")


@dataclass(frozen=True, slots=True)
class AuthToken:
    """A Blynk device auth token: 32 characters of ``[-_a-zA-Z0-9]`` (24 bytes, base64url).

    The token is a secret, so ``repr()`` and ``str()`` show only its first four characters;
    read :attr:`value` to get the whole token.

    Args:
        value: The token as shown in the Blynk console.

    Raises:
        InvalidTokenError: If ``value`` is not a well-formed token.

    Example:
        >>> AuthToken("AbCdEfGhIjKlMnOpQrStUvWxYz012345")
        AuthToken('AbCd…')
    """

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str):
            raise InvalidTokenError(f"auth token must be a str, not {type(self.value).__name__}")
        if not _TOKEN_RE.fullmatch(self.value):
            raise InvalidTokenError(
                f"auth token must be 32 characters of A-Z, a-z, 0-9, '-' or '_' (got {len(self.value)} characters)"
            )

    def __repr__(self) -> str:
        return f"AuthToken({self.value[:4] + '…'!r})"

    __str__ = __repr__
