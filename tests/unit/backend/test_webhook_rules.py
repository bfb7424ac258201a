"""Webhooks' rules without a network: the request check (Blynk's 5 KB bound when saved), the
escaping of placeholder values per body kind, the signature, the address guard's verdicts and
the allow-list setting."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence

import pytest

from backend.errors import ConfigError, ValidationError
from backend.settings import Settings
from backend.webhooks import signing
from backend.webhooks.guard import AddressGuard, AddressRefusedError, forbidden
from backend.webhooks.requests import (
    MAX_BODY_BYTES,
    BodyKind,
    RequestSpec,
    check,
    placeholder_sizes,
    render_request,
    with_blynk_names,
    worst_body_bytes,
)

SIZES = placeholder_sizes(1024)


def spec(
    body: str = "",
    kind: BodyKind = BodyKind.JSON,
    method: str = "POST",
    url: str = "https://hooks.example/x",
    headers: dict[str, str] | None = None,
) -> RequestSpec:
    return RequestSpec(method, url, headers or {}, kind, body)


@pytest.mark.parametrize(
    ("written", "why"),
    [
        (spec(method="PATCH"), "the method must be one of"),
        (spec(url="ftp://hooks.example/"), "must start with http:// or https://"),
        (spec(url="http://{DEVICE_NAME}.example/"), "not in its host"),
        (spec(url="http://user:pw@hooks.example/"), "not in the URL"),
        (spec(headers={"Host": "x"}), "the Host header is set by the server"),
        (spec(headers={"X-Openblynk-Signature": "x"}), "is set by the server"),
        (spec(headers={"Bad Name": "x"}), "is not a header name"),
        (spec(body="a", method="GET", kind=BodyKind.PLAIN), "a GET request has no body"),
        (spec(body="{TRIGGER_VALUE}" * 6, kind=BodyKind.PLAIN), "the limit is 5120"),
        (spec(body='{"v": {TRIGGER_VALUE}'), "the body is not JSON"),
    ],
)
def test_a_request_that_cannot_be_sent_as_written_is_refused(written: RequestSpec, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        check(written, SIZES)


@pytest.mark.parametrize(
    "written",
    [
        spec('{"device": "{DEVICE_NAME}", "value": "{TRIGGER_VALUE}", "at": "{TIMESTAMP}"}'),
        spec("device={DEVICE_NAME}&value={TRIGGER_VALUE}", BodyKind.FORM),
        spec(method="GET", url="https://hooks.example/v?x={TRIGGER_VALUE}"),
    ],
)
def test_the_usual_templates_pass_the_check(written: RequestSpec) -> None:
    try:
        check(written, SIZES)
    except ValidationError as exc:
        pytest.fail(f"refused: {exc.message}")


def test_the_worst_body_counts_each_placeholder_at_its_longest_escaped() -> None:
    template = "{TRIGGER_VALUE}{UNKNOWN}"
    assert worst_body_bytes(BodyKind.PLAIN, template, SIZES) == 1024 + len("{UNKNOWN}")
    assert worst_body_bytes(BodyKind.JSON, template, SIZES) == 2 * 1024 + len("{UNKNOWN}")
    assert worst_body_bytes(BodyKind.FORM, template, SIZES) == 3 * 1024 + len("{UNKNOWN}")
    value = '"\\' * 512 + "\x01"  # what escapes longest in JSON; the control character becomes a space
    rendered = render_request(spec('"{TRIGGER_VALUE}"'), {"TRIGGER_VALUE": value[:1024]})
    assert len(rendered.body) <= worst_body_bytes(BodyKind.JSON, '"{TRIGGER_VALUE}"', SIZES) <= MAX_BODY_BYTES


def test_values_are_escaped_for_where_they_go() -> None:
    values = {"DEVICE_NAME": 'Pump "a" & b/c\x01', "TRIGGER_VALUE": "1"}
    as_json = render_request(spec('{"d": "{DEVICE_NAME}", "v": {TRIGGER_VALUE}}'), values)
    assert json.loads(as_json.body) == {"d": 'Pump "a" & b/c ', "v": 1}
    assert as_json.headers["Content-Type"] == "application/json"
    as_form = render_request(spec("d={DEVICE_NAME}&v={TRIGGER_VALUE}", BodyKind.FORM), values)
    assert as_form.body == b"d=Pump+%22a%22+%26+b%2Fc%01&v=1"
    in_url = render_request(spec(method="GET", url="https://h.example/p?d={DEVICE_NAME}"), values)
    assert in_url.url == "https://h.example/p?d=Pump%20%22a%22%20%26%20b%2Fc%01"
    assert in_url.body == b"" and "Content-Type" not in in_url.headers
    header = render_request(spec(headers={"X-Name": "{DEVICE_NAME}\r\nX-Evil: 1"}), values)
    assert "\n" not in header.headers["X-Name"] and "\r" not in header.headers["X-Name"]


def test_the_signature_binds_the_body_and_the_time() -> None:
    sent = signing.headers("whsec_k", 1_700_000_000, b'{"a":1}')
    value, stamp = sent[signing.SIGNATURE_HEADER], sent[signing.TIMESTAMP_HEADER]
    assert value.startswith("sha256=") and len(value) == len("sha256=") + 64
    assert signing.verify("whsec_k", value, stamp, b'{"a":1}', now=1_700_000_100)
    assert not signing.verify("whsec_k", value, stamp, b'{"a":2}', now=1_700_000_100)  # another body
    assert not signing.verify("whsec_x", value, stamp, b'{"a":1}', now=1_700_000_100)  # another secret
    assert not signing.verify("whsec_k", value, "1700000001", b'{"a":1}', now=1_700_000_100)  # another time
    assert not signing.verify("whsec_k", value, stamp, b'{"a":1}', now=1_700_000_000 + 301)  # a replay, later
    assert signing.new_secret() != signing.new_secret()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.0.1",
        "::1",
        "169.254.169.254",
        "fe80::1",
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "fc00::1",
        "100.64.0.1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "8.8.8.8"])
def test_public_addresses_are_not(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address)) is None


async def test_the_allow_list_lets_named_hosts_and_networks_through() -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return {"hooks.lan": ["10.0.0.5"], "other.lan": ["10.0.0.6", "192.168.0.9"]}[host]

    guard = AddressGuard(frozenset({"hooks.lan"}), [ipaddress.ip_network("192.168.0.0/24")], resolver)
    assert str((await guard.target("hooks.lan", 80)).address) == "10.0.0.5"
    assert str((await guard.target("192.168.0.7", 80)).address) == "192.168.0.7"
    with pytest.raises(AddressRefusedError, match="10.0.0.6"):
        await guard.target("other.lan", 80)  # one address of two is outside the list


def test_the_allow_list_setting_is_read_and_checked() -> None:
    names, networks = Settings(webhook_allowed_hosts=" hooks.lan, 10.0.0.0/8,127.0.0.1 ,HOOKS2.lan.").webhook_allowed
    assert names == frozenset({"hooks.lan", "hooks2.lan"})
    assert networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))
    assert Settings().webhook_allowed == (frozenset(), ())
    with pytest.raises(ConfigError, match="OPENBLYNK_WEBHOOK_ALLOWED_HOSTS"):
        Settings.from_env({"OPENBLYNK_WEBHOOK_ALLOWED_HOSTS": "bad host!"}, dotenv=None)
    with pytest.raises(ConfigError, match="OPENBLYNK_WEBHOOK_FAILURE_LIMIT"):
        Settings.from_env({"OPENBLYNK_WEBHOOK_FAILURE_LIMIT": "0"}, dotenv=None)


def test_blynks_lower_case_names_take_the_same_values_and_bounds() -> None:
    values = with_blynk_names({"DEVICE_NAME": "Pump", "TRIGGER_VALUE": "7", "DEVICE_ID": "3"})
    assert (values["device_name"], values["dataStream_value"], values["device_id"]) == ("Pump", "7", "3")
    assert "user_email" not in values  # only names whose value is known
    assert with_blynk_names({"DEVICE_NAME": "a", "device_name": "b"})["device_name"] == "b"  # given wins
    assert SIZES["device_name"] == SIZES["DEVICE_NAME"] and SIZES["dataStream_value"] == SIZES["TRIGGER_VALUE"]
    rendered = render_request(spec("d={device_name}&v={dataStream_value}", BodyKind.FORM), values)
    assert rendered.body == b"d=Pump&v=7"
