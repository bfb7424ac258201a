"""Proof of issue #7 with real SDK devices against the real broker, app and PostgreSQL: a paced
fleet rollout, devices offline at the start, a corrupted image, the abort rule, a resumed
download, and offers that never reach another device."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from ota import ExponentialPacing, Progress
from tests.integration.ota.ota_support import (
    CuttingProxy,
    SdkDevice,
    create_shipment,
    image,
    public_key,
    sdk_device,
    upload,
    wait_counts,
)
from tests.support.accounts import Api
from tests.support.net import wait_for
from tests.support.provision import provision, thermostat_doc
from tests.support.stack import StackConfig

FLEET = 200
OFFLINE = 20


def _stop(devices: list[SdkDevice]) -> None:
    for sdk in devices:
        sdk.device.disconnect()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fleet_updates_through_a_paced_shipment(admin: Api, stack: StackConfig, tmp_path: Path) -> None:
    infos = provision(stack.database_url, thermostat_doc(devices=FLEET)).devices
    fw = upload(admin, image("2.0.0"))
    key = public_key(admin)
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ota-downloads")  # few threads for 200 devices
    fleet = [sdk_device(stack, i.id, i.token, key, str(tmp_path / str(i.id)), executor=pool) for i in infos]
    try:
        for sdk in fleet[OFFLINE:]:
            sdk.device.connect(timeout=30)
        pacing = ExponentialPacing(start=20, factor=2, success_percent=80)
        ship = create_shipment(
            admin,
            name="fleet 2.0.0",
            firmware_id=fw["id"],
            target={"kind": "devices", "device_ids": [i.id for i in infos]},
            pacing=pacing.to_dict(),
            abort={"failure_percent": 20, "min_sample": 20},
        )
        try:
            _roll_out(admin, ship["id"], fleet)
        except AssertionError:
            _dump(stack, ship["id"], fleet)  # what each unfinished device's row and agent say
            raise
        for sdk in fleet:  # no device ever received another device's offer
            assert sdk.offer_device_ids() == {sdk.id}
        _assert_paced(stack, ship["id"], pacing)
    finally:
        _stop(fleet)
        pool.shutdown(wait=False, cancel_futures=True)


def _roll_out(admin: Api, shipment_id: int, fleet: list[SdkDevice]) -> None:
    """The connected devices update, then the ones offline at the start once they connect."""
    wait_counts(admin, shipment_id, lambda s: s["counts"]["success"] == FLEET - OFFLINE, timeout=180)
    assert all(s.device.firmware_version == "1.0.0" for s in fleet[:OFFLINE])
    assert wait_counts(admin, shipment_id, lambda s: s["state"] == "live")["counts"]["pending"] == OFFLINE
    for sdk in fleet[:OFFLINE]:  # offline at the start: they update once they connect
        sdk.device.connect(timeout=30)
    done = wait_counts(admin, shipment_id, lambda s: s["state"] == "finished", timeout=120)
    assert done["counts"]["success"] == FLEET, done["counts"]
    assert all(s.device.firmware_version == "2.0.0" for s in fleet)


def _dump(stack: StackConfig, shipment_id: int, fleet: list[SdkDevice]) -> None:
    by_id = {s.id: s for s in fleet}
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute(
            "SELECT device_id, status, attempts, downloads, bytes_served, detail, updated_at FROM ota_device "
            "WHERE shipment_id = %s AND status <> 'success'",
            (shipment_id,),
        ).fetchall()
    for row in rows:
        sdk = by_id[row[0]]
        print(
            f"device {row[0]}: {row[1]} ({row[5]!r}), attempts {row[2]}, downloads {row[3]}, {row[4]} bytes served, "
            f"updated {row[6]}; connected {sdk.device.connected}, runs {sdk.device.firmware_version}, "
            f"agent error {sdk.agent.last_error!r}, {len(sdk.offers)} offers"
        )


def _assert_paced(stack: StackConfig, shipment_id: int, pacing: ExponentialPacing) -> None:
    """Every offer was allowed by the exponential gate given the successes before it."""
    with psycopg.connect(stack.database_url) as conn:
        offered = [
            r[0]
            for r in conn.execute(
                "SELECT attempts[1] FROM ota_device WHERE shipment_id = %s ORDER BY attempts[1]", (shipment_id,)
            )
        ]
        successes = [
            r[0]
            for r in conn.execute(
                "SELECT updated_at FROM ota_device WHERE shipment_id = %s AND status = 'success'", (shipment_id,)
            )
        ]
    waves = 0
    for rank, at in enumerate(offered, start=1):
        before = sum(1 for t in successes if t < at)
        allowed = pacing.allowed(0, Progress(started=rank - 1, succeeded=before))
        assert rank <= allowed, f"offer #{rank} at {at} went past the gate ({allowed} allowed)"
        waves = max(waves, allowed)
    assert waves > pacing.start  # the gate opened at least once: this was a paced rollout


@pytest.mark.timeout(180)
def test_corrupted_image_is_refused_and_the_abort_rule_stops_the_rollout(
    admin: Api, stack: StackConfig, tmp_path: Path
) -> None:
    infos = provision(stack.database_url, thermostat_doc(devices=6)).devices
    fw = upload(admin, image("3.0.0"))
    stored = stack.data_dir / "firmware" / fw["sha256"]
    data = bytearray(stored.read_bytes())
    data[100] ^= 0xFF  # the disk went bad: same size, one byte off
    stored.write_bytes(bytes(data))
    key = public_key(admin)
    fleet = [sdk_device(stack, i.id, i.token, key, str(tmp_path / str(i.id))) for i in infos]
    try:
        for sdk in fleet:
            sdk.device.connect(timeout=30)
        ship = create_shipment(
            admin,
            name="corrupted 3.0.0",
            firmware_id=fw["id"],
            target={"kind": "devices", "device_ids": [i.id for i in infos]},
            pacing={"kind": "constant", "per_minute": 3},
            abort={"failure_percent": 50, "min_sample": 2},
        )
        ended = wait_counts(admin, ship["id"], lambda s: s["state"] == "cancelled", timeout=60)
        assert ended["state_reason"].startswith("aborted")
        assert ended["counts"]["upload_failure"] >= 2
        assert ended["counts"]["success"] == 0 and ended["counts"]["pending"] >= 3  # the rest never got it
        refused = [s for s in fleet if s.offers]
        assert 2 <= len(refused) <= 3
        assert wait_for(lambda: all(s.agent.last_error for s in refused), 10)
        assert all("SHA-256" in (s.agent.last_error or "") for s in refused)
        assert all(s.device.firmware_version == "1.0.0" for s in fleet)
    finally:
        _stop(fleet)


@pytest.mark.timeout(120)
def test_a_download_cut_at_half_resumes(admin: Api, stack: StackConfig, tmp_path: Path) -> None:
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    data = image("4.0.0", size=256 * 1024)
    fw = upload(admin, data)
    proxy = CuttingProxy(stack.http_port, cut_after=len(data) // 2)
    sdk = sdk_device(stack, info.id, info.token, public_key(admin), str(tmp_path))
    try:
        sdk.device.connect(timeout=30)
        ship = create_shipment(
            admin,
            proxy.base_url,
            name=f"resume {info.id}",
            firmware_id=fw["id"],
            target={"kind": "devices", "device_ids": [info.id]},
        )
        done = wait_counts(admin, ship["id"], lambda s: s["state"] == "finished", timeout=60)
        assert done["counts"]["success"] == 1 and sdk.device.firmware_version == "4.0.0"
        downloads = [r for r in proxy.requests if "/api/ota/download" in r]
        assert proxy.cuts == 1 and len(downloads) == 2
        ranges = [line for line in downloads[1].split("\r\n") if line.lower().startswith("range:")]
        start = int(ranges[0].split("=")[1].rstrip("-"))
        assert 0 < start <= len(data) // 2  # it resumed where the cut left it
    finally:
        sdk.device.disconnect()
        proxy.close()


@pytest.mark.timeout(120)
def test_an_offer_reaches_the_device_only_once_its_status_is_committed(
    admin: Api, stack: StackConfig, tmp_path: Path
) -> None:
    """The device downloads the moment the offer arrives, and the download route refuses a
    device whose status is not "Request sent" yet; so the offer must be published after the
    commit. A deferred trigger makes the commit of this device's offer take 1.5 s (as a loaded
    server's might), which failed the update while the offer went out before the commit."""
    info = provision(stack.database_url, thermostat_doc()).devices[0]
    fw = upload(admin, image("5.0.0"))
    sdk = sdk_device(stack, info.id, info.token, public_key(admin), str(tmp_path))
    name = f"slow_offer_commit_{info.id}"
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$"
        )
        conn.execute(
            f"CREATE CONSTRAINT TRIGGER {name} AFTER INSERT OR UPDATE ON ota_device DEFERRABLE INITIALLY DEFERRED "
            f"FOR EACH ROW WHEN (NEW.device_id = {info.id} AND NEW.status = 'request_sent') EXECUTE FUNCTION {name}()"
        )
    try:
        sdk.device.connect(timeout=30)
        ship = create_shipment(
            admin,
            name=f"slow commit {info.id}",
            firmware_id=fw["id"],
            target={"kind": "devices", "device_ids": [info.id]},
        )
        done = wait_counts(admin, ship["id"], lambda s: s["state"] == "finished" or sdk.agent.last_error, 60)
        assert sdk.agent.last_error is None  # before the fix: "download refused: HTTP 403"
        assert done["counts"]["success"] == 1 and sdk.device.firmware_version == "5.0.0"
    finally:
        sdk.device.disconnect()
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            conn.execute(f"DROP TRIGGER {name} ON ota_device")
            conn.execute(f"DROP FUNCTION {name}()")
