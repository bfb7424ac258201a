"""No secret reaches a log line: what the handlers' filter blanks, and that it is installed."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from backend.redaction import RedactSecrets, redact
from backend.runtime import setup_logging
from backend.settings import Settings

TOKEN = "xLZNgxPiaG3vxSprKkSsNMqtWVr6Dl5F"  # a device token's shape: 32 characters of base64url


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'127.0.0.1:5 - "GET /external/api/get?token={TOKEN}&v1 HTTP/1.1" 200',
            '127.0.0.1:5 - "GET /external/api/get?token=***&v1 HTTP/1.1" 200',
        ),
        (
            "POST /oauth2/token?grant_type=refresh_token&client_id=oa2-client-id_abc&client_secret=s3cr3t-x&refresh_token=r-1",
            "POST /oauth2/token?grant_type=refresh_token&client_id=oa2-client-id_abc&client_secret=***&refresh_token=***",
        ),
        (
            "access_token=a1&secret=b2&password=c3&csrf_token=d4&newPassword=e5",
            "access_token=***&secret=***&password=***&csrf_token=***&newPassword=***",
        ),
        (
            f"ConnectPayload(client_id=fw-1, username=device, password={TOKEN})",
            "ConnectPayload(client_id=fw-1, username=device, password=***)",
        ),
        (
            '{"email": "a@b.c", "password": "hunter 2", "token":"abc"}',
            '{"email": "a@b.c", "password": "***", "token":"***"}',
        ),
        ("{'client_secret': 'xyz', 'n': 1}", "{'client_secret': '***', 'n': 1}"),
        ("Authorization: Basic b2EyLWNsaWVudDpzZWNyZXQ=", "Authorization: Basic ***"),
        ("authorization: bearer q1w2e3r4t5y6u7i8", "authorization: bearer ***"),
        (f"PUBLISH dev/{TOKEN}/ds/Temperature", "PUBLISH dev/***/ds/Temperature"),
    ],
)
def test_secrets_are_blanked(line: str, expected: str) -> None:
    assert redact(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "basic configuration loaded",
        "client_id=oa2-client-id_" + TOKEN,
        "GET /api/devices?q=kitchen 200",
        "device 42 token rotated",
        "refused password: too short",
        "d/42/ds/Temperature 21.5",
    ],
)
def test_ordinary_lines_stay_as_they_are(line: str) -> None:
    assert redact(line) == line


def test_the_filter_blanks_arguments_and_tracebacks() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactSecrets())
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning('"%s %s HTTP/1.1"', "GET", f"/external/api/update?token={TOKEN}&v1=1")
        try:
            raise ValueError(f"bad password=hunter2 for {TOKEN}")
        except ValueError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert '"GET /external/api/update?token=***&v1=1 HTTP/1.1"' in text
    assert "ValueError: bad password=*** for ***" in text
    assert TOKEN not in text and "hunter2" not in text


@pytest.fixture
def restore_root() -> Iterator[logging.Logger]:
    """The root logger, given back afterwards with its own handlers, filters and level."""
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        for f in [f for f in handler.filters if isinstance(f, RedactSecrets)]:
            handler.removeFilter(f)
        if handler not in saved:
            handler.close()
    root.handlers, root.level = saved, level
    for name in ("transitions", "amqtt", "uvicorn.access", "psycopg.pool"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_setup_logging_installs_the_filter_on_every_handler(
    restore_root: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    setup_logging(Settings.from_env({"OPENBLYNK_LOG_LEVEL": "DEBUG"}), "app")
    assert restore_root.handlers
    assert all(any(isinstance(f, RedactSecrets) for f in h.filters) for h in restore_root.handlers)
    logging.getLogger("uvicorn.access").debug(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", f"/external/api/get?token={TOKEN}&v0", "1.1", 200
    )
    assert '"GET /external/api/get?token=***&v0 HTTP/1.1" 200' in caplog.text and TOKEN not in caplog.text
