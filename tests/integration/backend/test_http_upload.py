"""POST /external/api/upload against the real app: Blynk's URL answer, the file served back,
the size limit without buffering, eviction, the daily limit and safe file names."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from backend.transfer.schemas import DeviceOut
from tests.support.blynk import blynk_error
from tests.support.stack import StackConfig

MB = 1024 * 1024
URL = re.compile(r"^http://127\.0\.0\.1:\d+/device_uploads/(\d+)/([A-Za-z0-9]{32})(\.[a-z0-9]+)?$")


def upload(
    http: httpx.Client,
    token: str,
    name: str = "file.png",
    data: bytes = b"*My awesome poem*",
    field: str = "upfile",
    **params: str,
) -> httpx.Response:
    return http.post(
        "/external/api/upload",
        params={"token": token, **params},
        files={field: (name, data, "application/octet-stream")},
    )


def uploads(http: httpx.Client, token: str, count: int) -> list[int]:
    """The statuses of ``count`` uploads of one device, at most 50 a second: the device API's
    rate limit (OPENBLYNK_DEVICE_RATE_LIMIT, Blynk's 50) would refuse them back to back."""
    statuses = []
    for i in range(count):
        time.sleep(0.02)
        statuses.append(upload(http, token, f"n{i}.txt").status_code)
    return statuses


def rows(stack: StackConfig, device_id: int) -> list[tuple[str, str, str, int]]:
    with psycopg.connect(stack.database_url) as conn:
        return [
            tuple(r)
            for r in conn.execute(  # type: ignore[misc]
                "SELECT name, stored_name, kind, size FROM device_file WHERE device_id = %s ORDER BY created_at, id",
                (device_id,),
            ).fetchall()
        ]


def test_upload_answers_the_url_that_serves_the_file(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev = devices[0]
    r = upload(http, dev.token, "photo.png", b"\x89PNG fake image")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    match = URL.match(r.text)
    assert match and int(match[1]) == dev.id and match[3] == ".png"
    got = http.get(r.text)
    assert (got.status_code, got.content) == (200, b"\x89PNG fake image")
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-security-policy"] == "sandbox"
    assert rows(stack, dev.id) == [("photo.png", match[2] + ".png", "file", 15)]
    assert (stack.data_dir / "uploads" / str(dev.id) / (match[2] + ".png")).read_bytes() == b"\x89PNG fake image"


def test_the_same_name_again_replaces_the_file_at_the_same_url(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    first = upload(http, devices[0].token, "log.txt", b"one").text
    second = upload(http, devices[0].token, "log.txt", b"two, longer").text
    assert first == second
    assert http.get(second).content == b"two, longer"
    assert [(r[0], r[3]) for r in rows(stack, devices[0].id)] == [("log.txt", 11)]


def test_core_dumps_are_kept_apart_each_time(http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]) -> None:
    a = upload(http, devices[0].token, "coredump.bin", b"dump 1", type="DUMP")
    b = upload(http, devices[0].token, "coredump.bin", b"dump 2", type="DUMP")
    assert a.status_code == b.status_code == 200 and a.text != b.text
    assert http.get(a.text).content == b"dump 1" and http.get(b.text).content == b"dump 2"
    assert [r[2] for r in rows(stack, devices[0].id)] == ["dump", "dump"]


def test_ten_files_per_device_the_oldest_is_evicted(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev = devices[0]
    urls = [upload(http, dev.token, f"f{i}.txt", f"file {i}".encode()).text for i in range(12)]
    assert [http.get(u).status_code for u in urls] == [404, 404] + [200] * 10
    assert [r[0] for r in rows(stack, dev.id)] == [f"f{i}.txt" for i in range(2, 12)]
    assert len(list((stack.data_dir / "uploads" / str(dev.id)).iterdir())) == 10


def test_a_file_above_5_mb_is_refused_and_nothing_is_kept(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    dev = devices[0]
    r = upload(http, dev.token, "big.bin", b"x" * (5 * MB + 1))
    assert (r.status_code, r.json()) == (400, blynk_error("File is too large. Maximum file size is 5 MB."))
    assert rows(stack, dev.id) == []
    assert list((stack.data_dir / "uploads" / str(dev.id)).iterdir()) == []
    assert upload(http, dev.token, "fits.bin", b"x" * (5 * MB)).status_code == 200


def test_a_streamed_body_is_cut_off_at_the_limit(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut]
) -> None:
    """No Content-Length (chunked): the server stops reading once the limit is passed."""
    boundary = "someboundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="upfile"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for _ in range(100):  # 100 × 64 KiB = 6.25 MiB
            yield b"y" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    r = http.post(
        "/external/api/upload",
        params={"token": devices[0].token},
        content=body(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert (r.status_code, r.json()) == (400, blynk_error("File is too large. Maximum file size is 5 MB."))
    assert rows(stack, devices[0].id) == []


def files_outside(stack: StackConfig, folder: Path) -> dict[Path, bytes]:
    """Every file of the data directory outside ``folder``, with its content (logs aside)."""
    return {
        p: p.read_bytes()
        for p in stack.data_dir.rglob("*")
        if p.is_file() and p.suffix != ".log" and folder not in p.parents
    }


@pytest.mark.parametrize(
    "filename", ["../../secret.key", "..\\..\\secret.key", "/etc/passwd", "....//x.sh", "a\x00b.txt", "", ".."]
)
def test_file_names_cannot_leave_the_device_folder(
    http: httpx.Client, stack: StackConfig, devices: list[DeviceOut], filename: str
) -> None:
    dev = devices[0]
    folder = stack.data_dir / "uploads" / str(dev.id)
    # the stack's key comes from OPENBLYNK_SECRET_KEY; this file is a decoy where "../../secret.key" would land
    decoy = stack.data_dir / "secret.key"
    decoy.write_bytes(b"not to be overwritten")
    try:
        before = files_outside(stack, folder)
        passwd = Path("/etc/passwd").read_bytes()
        r = upload(http, dev.token, filename, b"payload")
        after = files_outside(stack, folder)
        assert {p for p, content in after.items() if before.get(p) != content} == set()  # nothing new, nothing changed
        assert Path("/etc/passwd").read_bytes() == passwd
        assert r.status_code == 200 and URL.match(r.text)
        ((name, stored, _, _),) = rows(stack, dev.id)
        assert [p.name for p in folder.iterdir()] == [stored]
        assert "/" not in name and "\\" not in name and not name.startswith(".") and "\x00" not in name
        assert (folder / stored).read_bytes() == b"payload"
    finally:
        decoy.unlink()


@pytest.mark.parametrize("path", ["..%2F..%2Fsecret.key", "..%2F..%2F..%2Fpostgres", "%2E%2E", "x" * 32 + ".png"])
def test_serving_never_leaves_the_device_folder(http: httpx.Client, devices: list[DeviceOut], path: str) -> None:
    assert http.get(f"/device_uploads/{devices[0].id}/{path}").status_code == 404


def test_a_file_is_served_only_under_its_own_device(http: httpx.Client, devices: list[DeviceOut]) -> None:
    url = upload(http, devices[0].token, "a.txt").text
    assert http.get(url.replace(f"/{devices[0].id}/", f"/{devices[1].id}/")).status_code == 404


def test_uploaded_html_cannot_run_in_the_apps_origin(http: httpx.Client, devices: list[DeviceOut]) -> None:
    url = upload(http, devices[0].token, "x.html", b"<script>alert(1)</script>").text
    got = http.get(url)
    assert got.headers["content-security-policy"] == "sandbox"
    assert got.headers["x-content-type-options"] == "nosniff"


def test_daily_upload_limit_is_blynks_403(http: httpx.Client, devices: list[DeviceOut]) -> None:
    dev = devices[0]
    assert uploads(http, dev.token, 100) == [200] * 100
    time.sleep(0.02)
    r = upload(http, dev.token, "one-more.txt")
    assert (r.status_code, r.json()) == (403, blynk_error("File uploads limit has been reached."))
    assert upload(http, devices[1].token).status_code == 200  # per device


def test_refused_uploads_do_not_count_against_the_daily_limit(http: httpx.Client, devices: list[DeviceOut]) -> None:
    dev = devices[0]
    for _ in range(3):
        assert upload(http, dev.token, field="other").status_code == 400
    assert uploads(http, dev.token, 100) == [200] * 100


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"field": "file"}, "Request with incorrect parameters"),
    ],
)
def test_a_form_without_upfile_is_refused(
    http: httpx.Client, devices: list[DeviceOut], kwargs: dict[str, str], message: str
) -> None:
    r = upload(http, devices[0].token, **kwargs)
    assert (r.status_code, r.json()) == (400, blynk_error(message))


@pytest.mark.parametrize("headers", [{"Content-Type": "application/json"}, {"Content-Type": "multipart/form-data"}, {}])
def test_a_body_that_is_not_multipart_is_unknown_content(
    http: httpx.Client, devices: list[DeviceOut], headers: dict[str, str]
) -> None:
    r = http.post("/external/api/upload", params={"token": devices[0].token}, content=b"{}", headers=headers)
    assert (r.status_code, r.json()) == (400, blynk_error("Unknown content type."))


def test_a_broken_multipart_body_is_refused(http: httpx.Client, devices: list[DeviceOut]) -> None:
    r = http.post(
        "/external/api/upload",
        params={"token": devices[0].token},
        content=b"--b\r\nnot headers",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert (r.status_code, r.json()) == (400, blynk_error("Request with incorrect parameters"))


def test_token_errors(http: httpx.Client) -> None:
    r = http.post("/external/api/upload", files={"upfile": ("a.txt", b"x")})
    assert (r.status_code, r.json()) == (400, blynk_error("No token provided."))
    r = http.post("/external/api/upload", params={"token": "z" * 32}, files={"upfile": ("a.txt", b"x")})
    assert (r.status_code, r.json()) == (400, blynk_error("Invalid token."))
