"""Apply modes, targets, preferred time, attempts, timeouts, pacing and the abort rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ota import (
    AbortRule,
    ApplyMode,
    AttemptsLimit,
    ConstantPacing,
    DeviceFirmware,
    DeviceTimeout,
    ExponentialPacing,
    FirmwareInfo,
    PreferredTime,
    Progress,
    RuleError,
    Target,
    TargetKind,
    Verdict,
    abort_from_dict,
    check_mode,
    is_installed,
    pacing_from_dict,
    verdict,
)

IMAGE = FirmwareInfo(version="1.2.0", fw_type="TMPL1", build="Mar 05 2024 18:29:27")
UTC = UTC


def dev(
    ver: str | None = "1.1.0", typ: str | None = "TMPL1", build: str | None = "Jan 01 2024 00:00:00"
) -> DeviceFirmware:
    return DeviceFirmware(ver, typ, build)


@pytest.mark.parametrize(
    "mode, device, expected",
    [
        (ApplyMode.LOWER_VERSION, dev("1.1.9"), Verdict.UPDATE),
        (ApplyMode.LOWER_VERSION, dev("1.2"), Verdict.VERSION_MISMATCH),
        (ApplyMode.LOWER_VERSION, dev("1.10.0"), Verdict.VERSION_MISMATCH),
        (ApplyMode.LOWER_VERSION, dev("not a version"), Verdict.UPDATE),
        (ApplyMode.LOWER_VERSION, dev(typ="TMPL2"), Verdict.TYPE_MISMATCH),
        (ApplyMode.LOWER_VERSION, dev(typ=None), Verdict.UPDATE),
        (ApplyMode.EARLIER_BUILD, dev(build="Mar 05 2024 18:29:26"), Verdict.UPDATE),
        (ApplyMode.EARLIER_BUILD, dev(build="Mar 05 2024 18:29:27"), Verdict.VERSION_MISMATCH),
        (ApplyMode.EARLIER_BUILD, dev(build="Apr 05 2024 18:29:27"), Verdict.VERSION_MISMATCH),
        (ApplyMode.ANOTHER_BUILD, dev(build="Apr 05 2024 18:29:27"), Verdict.UPDATE),
        (ApplyMode.ANOTHER_BUILD, dev(build="Mar  5 2024 18:29:27"), Verdict.VERSION_MISMATCH),
    ],
)
def test_apply_modes(mode: ApplyMode, device: DeviceFirmware, expected: Verdict) -> None:
    assert verdict(mode, IMAGE, device) is expected


def test_modes_need_the_tag_fields() -> None:
    with pytest.raises(RuleError, match="version"):
        check_mode(ApplyMode.LOWER_VERSION, FirmwareInfo(build="Mar 05 2024 18:29:27"))
    with pytest.raises(RuleError, match="build"):
        check_mode(ApplyMode.ANOTHER_BUILD, None)


def test_installed_is_read_from_info_mcu() -> None:
    assert is_installed(IMAGE, dev("1.2"))
    assert not is_installed(IMAGE, dev("1.1.0"))
    assert is_installed(FirmwareInfo(build="Mar 05 2024 18:29:27"), dev(None, build="Mar  5 2024 18:29:27"))
    assert not is_installed(None, dev())


@pytest.mark.parametrize(
    "window, hour, expected",
    [
        (PreferredTime.NIGHT, 0, True),
        (PreferredTime.NIGHT, 5, True),
        (PreferredTime.NIGHT, 6, False),
        (PreferredTime.MORNING, 6, True),
        (PreferredTime.AFTERNOON, 17, True),
        (PreferredTime.AFTERNOON, 18, False),
        (PreferredTime.EVENING, 23, True),
        (PreferredTime.EVENING, 0, False),
        (PreferredTime.ANY, 3, True),
    ],
)
def test_windows_in_the_device_zone(window: PreferredTime, hour: int, expected: bool) -> None:
    zone = ZoneInfo("America/Goose_Bay")
    local = datetime(2024, 3, 1, hour, 30, tzinfo=zone)
    assert window.allows(local.astimezone(UTC), zone) is expected
    with pytest.raises(RuleError):
        window.allows(datetime(2024, 3, 1), zone)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))
def test_exactly_one_window_holds_at_any_time(now: datetime) -> None:
    zone = ZoneInfo("Asia/Kolkata")
    windows = [w for w in PreferredTime if w is not PreferredTime.ANY and w.allows(now, zone)]
    assert len(windows) == 1


def test_attempts_limit() -> None:
    limit = AttemptsLimit()
    now = datetime(2024, 1, 2, tzinfo=UTC)
    recent = [now - timedelta(hours=h) for h in (1, 2, 3)]
    assert not limit.allows(recent, now)
    assert limit.allows(recent[:2], now)
    assert limit.allows(recent[:2] + [now - timedelta(hours=24)], now)
    assert limit.recent(recent + [now - timedelta(days=2)], now) == recent
    with pytest.raises(RuleError):
        AttemptsLimit(0)
    with pytest.raises(RuleError):
        AttemptsLimit(3, timedelta(seconds=1))


def test_device_timeout() -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    assert DeviceTimeout(60).expired(at, at + timedelta(seconds=60))
    assert not DeviceTimeout(60).expired(at, at + timedelta(seconds=59))
    with pytest.raises(RuleError):
        DeviceTimeout(1)


def test_targets() -> None:
    assert Target(TargetKind.TEMPLATE, template_id=4).matches(1, 4, [1], [])
    assert not Target(TargetKind.TEMPLATE, template_id=4).matches(1, 5, [1], [])
    assert Target(TargetKind.ORG, org_id=2).matches(1, 4, [1, 2, 7], [])
    assert not Target(TargetKind.ORG, org_id=3).matches(1, 4, [1, 2, 7], [])
    assert Target(TargetKind.TAG, tag="beta").matches(1, 4, [1], ["beta"])
    assert Target(TargetKind.DEVICES, device_ids=(1, 2)).matches(2, 4, [1], [])
    assert not Target(TargetKind.DEVICES, device_ids=(1, 2)).open_ended
    for bad in [
        dict(kind=TargetKind.TEMPLATE),
        dict(kind=TargetKind.ORG),
        dict(kind=TargetKind.TAG, tag=""),
        dict(kind=TargetKind.DEVICES),
        dict(kind=TargetKind.DEVICES, device_ids=(1, 1)),
    ]:
        with pytest.raises(RuleError):
            Target(**bad)  # type: ignore[arg-type]


def test_constant_pacing_per_minute() -> None:
    pacing = ConstantPacing(10)
    assert [pacing.allowed(s, Progress()) for s in (0, 59.9, 60, 185)] == [10, 10, 20, 40]


def test_exponential_pacing_opens_waves_on_success() -> None:
    pacing = ExponentialPacing(start=10, factor=2, success_percent=80)
    assert pacing.allowed(0, Progress()) == 10
    assert pacing.allowed(0, Progress(started=10, succeeded=7)) == 10  # gate closed
    assert pacing.allowed(0, Progress(started=10, succeeded=8)) == 30
    assert pacing.allowed(0, Progress(started=30, succeeded=23)) == 30
    assert pacing.allowed(0, Progress(started=30, succeeded=24)) == 70
    assert pacing.allowed(0, Progress(started=9, succeeded=9)) == 10  # wave not fully started


@given(
    start=st.integers(1, 50),
    factor=st.floats(1.1, 10),
    pct=st.floats(1, 100),
    started=st.integers(0, 5000),
    succeeded=st.integers(0, 5000),
)
def test_exponential_never_grows_past_the_gate(
    start: int, factor: float, pct: float, started: int, succeeded: int
) -> None:
    succeeded = min(succeeded, started)
    pacing = ExponentialPacing(start, factor, pct)
    allowed = pacing.allowed(0, Progress(started, succeeded))
    assert allowed >= start
    if allowed > start:  # every wave before the current one met the success threshold
        assert succeeded * 100 >= pct * start
    assert pacing.allowed(0, Progress(started, succeeded)) <= pacing.allowed(0, Progress(started + 1, succeeded + 1))


def test_abort_rule() -> None:
    rule = AbortRule(failure_percent=50, min_sample=4)
    assert not rule.triggered(Progress(started=10, succeeded=0, failed=3))  # sample too small
    assert rule.triggered(Progress(started=10, succeeded=2, failed=2))
    assert not rule.triggered(Progress(started=10, succeeded=3, failed=2))


@pytest.mark.parametrize(
    "doc",
    [
        None,
        3,
        {},
        {"kind": "constant"},
        {"kind": "constant", "per_minute": "x"},
        {"kind": "constant", "per_minute": 0},
        {"kind": "exponential", "start": 1, "factor": 1},
        {"kind": "other"},
    ],
)
def test_bad_pacing_is_refused(doc: object) -> None:
    with pytest.raises(RuleError):
        pacing_from_dict(doc)


def test_pacing_and_abort_round_trip() -> None:
    for pacing in (ConstantPacing(5), ExponentialPacing(3, 1.5, 90)):
        assert pacing_from_dict(pacing.to_dict()) == pacing
    assert abort_from_dict(AbortRule(20, 5).to_dict()) == AbortRule(20, 5)
    assert abort_from_dict(None) is None
    for bad in ({}, {"failure_percent": 0}, {"failure_percent": "x"}, [1]):
        with pytest.raises(RuleError):
            abort_from_dict(bad)
