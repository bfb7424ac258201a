"""The per-device state machine: Blynk's names, signals, and invariants under any sequence."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ota import DeviceStatus, Report, TransitionError, next_status
from ota.states import (
    DeviceReport,
    DownloadCompleted,
    DownloadStarted,
    Event,
    LimitReached,
    McuReport,
    Offered,
    TimedOut,
)

S = DeviceStatus


def run(*events: Event, start: DeviceStatus = S.PENDING) -> DeviceStatus:
    status = start
    for event in events:
        status = next_status(status, event) or status
    return status


def test_blynk_names() -> None:
    assert [s.label for s in S] == [
        "Firmware Shipment Process Started",
        "Request sent",
        "New Firmware Requested",
        "Firmware Downloaded",
        "Success",
        "Upload failure",
        "Download limit reached",
        "Rollback",
        "Firmware type mismatch",
        "Firmware version mismatch",
    ]


def test_happy_path_from_real_signals() -> None:
    installed = McuReport(installed=True, type_matches=True, is_origin=False)
    assert run(Offered()) is S.REQUEST_SENT
    assert run(Offered(), DownloadStarted()) is S.REQUESTED
    assert run(Offered(), DownloadStarted(), DownloadCompleted()) is S.DOWNLOADED
    assert run(Offered(), DownloadStarted(), DownloadCompleted(), installed) is S.SUCCESS


def test_a_reconnect_with_the_old_version_changes_nothing() -> None:
    old = McuReport(installed=False, type_matches=True, is_origin=True)
    assert run(Offered(), DownloadStarted(), old) is S.REQUESTED


def test_failures() -> None:
    assert run(Offered(), DeviceReport(Report.FAILURE)) is S.UPLOAD_FAILURE
    assert run(Offered(), TimedOut()) is S.UPLOAD_FAILURE
    assert run(Offered(), DeviceReport(Report.TYPE_MISMATCH)) is S.TYPE_MISMATCH
    assert run(Offered(), McuReport(False, False, False)) is S.TYPE_MISMATCH
    assert run(Offered(), McuReport(False, True, False)) is S.VERSION_MISMATCH
    assert run(Offered(), LimitReached()) is S.DOWNLOAD_LIMIT


def test_rollback_old_new_old() -> None:
    done = run(Offered(), McuReport(True, True, False))
    assert run(McuReport(False, True, True), start=done) is S.ROLLBACK
    assert run(DeviceReport(Report.ROLLBACK), start=done) is S.ROLLBACK
    assert run(DownloadStarted(), TimedOut(), start=done) is S.SUCCESS


def test_retry_after_failure_only() -> None:
    assert run(Offered(), start=S.UPLOAD_FAILURE) is S.REQUEST_SENT
    for status in (S.SUCCESS, S.REQUEST_SENT, S.ROLLBACK, S.DOWNLOAD_LIMIT, S.TYPE_MISMATCH):
        with pytest.raises(TransitionError):
            next_status(status, Offered())


def test_device_progress_reports() -> None:
    assert run(Offered(), DeviceReport(Report.DOWNLOADING)) is S.REQUESTED
    assert run(Offered(), DeviceReport(Report.INSTALLING)) is S.DOWNLOADED
    assert next_status(S.DOWNLOADED, DeviceReport(Report.DOWNLOADED)) is None


_events = st.sampled_from(
    [
        DownloadStarted(),
        DownloadCompleted(),
        TimedOut(),
        LimitReached(),
        *[DeviceReport(r) for r in Report],
        *[McuReport(a, b, c) for a in (True, False) for b in (True, False) for c in (True, False)],
    ]
)


@given(st.lists(_events, max_size=30))
def test_no_event_sequence_leaves_the_known_graph(events: list[Event]) -> None:
    status = S.REQUEST_SENT
    for event in events:
        new = next_status(status, event)
        if new is None:
            continue
        assert new is not status
        assert new is not S.PENDING
        if status.final and status is not S.SUCCESS:  # a failure only leaves through a new offer
            assert isinstance(event, LimitReached) and status is S.UPLOAD_FAILURE
        if status is S.SUCCESS:
            assert new is S.ROLLBACK
        if new is S.SUCCESS:
            assert isinstance(event, McuReport) and event.installed
        status = new
