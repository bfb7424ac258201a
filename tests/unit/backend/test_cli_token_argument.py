"""A provisioning token may start with "-" (it is URL-safe base64): the command line the console
shows passes it as ``--token=<token>``, which the CLI reads whatever its first character. CI
once drew such a token, and ``--token <token>`` failed with "expected one argument"."""

from __future__ import annotations

import pytest

from backend.cli import _parser

TOKEN = "-aB3_dEf9-hIjKlMnOpQrStUvWxYz012"


def test_a_token_starting_with_a_dash_is_read_in_the_form_the_console_shows() -> None:
    args = _parser().parse_args(["provision", f"--token={TOKEN}", "--ssid", "Flat", "--server", "127.0.0.1"])
    assert args.token == TOKEN


def test_the_separate_form_takes_such_a_token_for_an_option() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["provision", "--token", TOKEN, "--ssid", "Flat", "--server", "127.0.0.1"])
