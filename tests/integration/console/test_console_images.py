"""An organization's image library (issue #19 item 2: the mobile dashboard's image button)
against the real app, with its limits set small (4 KB an image, 3 an organization): upload,
list, serve (checked type, nosniff, a private cache header, an ETag), delete; what is refused
(SVG, a type other than PNG/JPEG/WebP, a file whose first bytes are not the declared type, too
large, a full library, no CSRF token); who sees what (another tenant: nothing; a customer
organization below: the images, to show its devices' dashboards); and image buttons on a mobile
dashboard (images of the template's organization only, and an image in use is not deleted)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.console.test_console_api import error
from tests.support.accounts import ADMIN, ROOT_ADMIN, AccountsStack, Api, invite_and_join, start_accounts_stack
from tests.support.images import jpeg_start, png, webp_start

MAX_BYTES = 4096
IMAGES = "/api/console/images"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture(scope="module")
def acc(pg_server: str, template_db: str) -> Iterator[AccountsStack]:
    yield from start_accounts_stack(
        pg_server, template_db, "images", image_max_bytes=str(MAX_BYTES), images_per_org="3"
    )


def upload(api: Api, name: str, data: Any, content_type: str, csrf: bool = True, **params: Any) -> httpx.Response:
    """POST an image as the editor does: the raw file with its type (and the CSRF header)."""
    headers = {"Content-Type": content_type, **({"X-CSRF-Token": api.csrf} if csrf else {})}
    return api.post(IMAGES, params={"name": name, **params}, content=data, headers=headers)


class People:
    """The signed-in clients of one test, closed after it."""

    def __init__(self, acc: AccountsStack) -> None:
        self.acc = acc
        self.clients: list[Api] = []
        self.root = self.keep(acc.login(*ROOT_ADMIN))

    def keep(self, api: Api) -> Api:
        self.clients.append(api)
        return api

    def tenant(self, label: str) -> tuple[int, Api]:
        """A new organization under the root one, and its signed-in administrator."""
        org = self.root.post("/api/orgs", json={"name": f"{label} {uuid.uuid4().hex[:6]}"}).json()["id"]
        address = f"admin-{label.lower()}-{uuid.uuid4().hex[:6]}@example.com"
        return org, self.keep(invite_and_join(self.acc, self.root, org, address, ADMIN))


@pytest.fixture
def people(acc: AccountsStack) -> Iterator[People]:
    made = People(acc)
    yield made
    for api in made.clients:
        api.close()


def stored(acc: AccountsStack, org: int) -> int:
    with acc.db() as db:
        row = db.execute("SELECT count(*) FROM console_image WHERE org_id = %s", (org,)).fetchone()
    assert row is not None
    return int(row[0])


def test_an_image_is_uploaded_listed_served_and_deleted(acc: AccountsStack, people: People) -> None:
    org, admin = people.tenant("Lib")
    picture = png(4, 4, (200, 30, 30))
    r = upload(admin, "pump\x00-on.png", picture, "image/png")
    assert r.status_code == 201, r.text
    made = r.json()
    assert (made["org_id"], made["name"], made["content_type"], made["size"]) == (
        org,
        "pump -on.png",
        "image/png",
        len(picture),
    )
    assert made["url"] == f"{IMAGES}/{made['id']}/content"
    assert [i["id"] for i in admin.get(IMAGES).json()] == [made["id"]]
    assert [i["id"] for i in admin.get(IMAGES, params={"org_id": org}).json()] == [made["id"]]
    again = upload(admin, "same file", picture, "image/png")  # the identical file is answered as it is
    assert again.status_code == 201 and again.json()["id"] == made["id"]
    assert stored(acc, org) == 1

    served = admin.get(made["url"])
    assert served.status_code == 200 and served.content == picture
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["cache-control"] == "private, max-age=86400"
    assert served.headers["cross-origin-resource-policy"] == "same-origin"
    assert "sandbox" in served.headers["content-security-policy"]
    revalidated = admin.get(made["url"], headers={"If-None-Match": served.headers["etag"]})
    assert revalidated.status_code == 304 and revalidated.content == b""

    for data, kind in ((jpeg_start(), "image/jpeg"), (webp_start(), "image/webp")):
        r = upload(admin, f"a {kind}", data, kind)
        assert r.status_code == 201 and r.json()["content_type"] == kind, r.text
        assert admin.get(r.json()["url"]).headers["content-type"] == kind

    with httpx.Client(base_url=acc.base_url) as anon:
        assert anon.get(made["url"]).status_code == 401
    assert admin.delete(f"{IMAGES}/{made['id']}", headers={}).status_code == 403  # no CSRF token
    r = admin.delete(f"{IMAGES}/{made['id']}")
    assert r.status_code == 204, r.text
    assert admin.get(made["url"]).status_code == 404
    assert made["id"] not in [i["id"] for i in admin.get(IMAGES).json()]
    with acc.db() as db:
        logged = db.execute(
            "SELECT action, target_id FROM audit_log WHERE org_id = %s AND target_type = 'image' ORDER BY id", (org,)
        ).fetchall()
    actions = [(action, str(target)) for action, target in logged]
    assert [a for a, _ in actions] == ["image.upload"] * 3 + ["image.delete"]  # the identical file: not again
    assert actions[0] == ("image.upload", str(made["id"]))
    assert actions[-1] == ("image.delete", str(made["id"]))


def test_what_is_not_a_png_jpeg_or_webp_image_of_the_size_limit_is_refused(acc: AccountsStack, people: People) -> None:
    org, admin = people.tenant("Bad")

    def streamed(data: bytes) -> Iterator[bytes]:  # no Content-Length: refused while reading
        for at in range(0, len(data), 1000):
            yield data[at : at + 1000]

    big = png(60, 60) + bytes(MAX_BYTES)
    for name, data, kind, message in [
        ("x.svg", SVG, "image/svg+xml", "SVG images are refused"),
        ("x.png", SVG, "image/png", "SVG images are refused"),
        ("x.png", b"\xef\xbb\xbf <?xml version='1.0'?>" + SVG, "image/png", "SVG images are refused"),
        ("x.txt", b"hello", "text/plain", "must be PNG, JPEG or WebP"),
        ("x.gif", b"GIF89a" + bytes(20), "image/gif", "must be PNG, JPEG or WebP"),
        ("x.png", png(), "image/jpeg", "the file is a PNG image, not the JPEG its Content-Type says"),
        ("x.jpg", jpeg_start(), "image/webp", "the file is a JPEG image, not the WebP"),
        ("x.png", b"MZ" + bytes(60), "image/png", "the file is not a PNG image"),
        ("x.bin", b"MZ" + bytes(60), "application/octet-stream", "the file is not a PNG, JPEG or WebP image"),
        ("x.bin", SVG, "", "SVG images are refused"),
        ("x.png", b"", "image/png", "the image is empty"),
        ("x.png", big, "image/png", f"larger than the limit of {MAX_BYTES} bytes"),
        ("x.png", streamed(big), "image/png", f"larger than the limit of {MAX_BYTES} bytes"),
        ("  ", png(), "image/png", "an image needs a name"),
    ]:
        r = upload(admin, name, data, kind)
        assert r.status_code == 400 and message in error(r), (name, kind, r.status_code, r.text)
    r = upload(admin, "x.png", png(), "image/png", csrf=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert stored(acc, org) == 0
    assert upload(admin, "fits.png", png() + bytes(MAX_BYTES - len(png())), "image/png").status_code == 201
    r = upload(admin, "undeclared", png(5, 5), "application/octet-stream")  # the first bytes tell
    assert r.status_code == 201 and r.json()["content_type"] == "image/png", r.text


def test_an_organizations_library_holds_a_limited_number_of_images(acc: AccountsStack, people: People) -> None:
    org, admin = people.tenant("Full")
    made = [upload(admin, f"i{n}.png", png(2, 2, (n, n, n)), "image/png").json()["id"] for n in range(3)]
    r = upload(admin, "one more.png", png(2, 2, (9, 9, 9)), "image/png")
    assert r.status_code == 400 and "image library is full (3 images)" in error(r)
    assert upload(admin, "again.png", png(2, 2, (1, 1, 1)), "image/png").json()["id"] == made[1]  # already there
    assert admin.delete(f"{IMAGES}/{made[0]}").status_code == 204
    assert upload(admin, "one more.png", png(2, 2, (9, 9, 9)), "image/png").status_code == 201
    assert stored(acc, org) == 3


def test_tenants_see_only_their_own_images_and_customers_those_above(acc: AccountsStack, people: People) -> None:
    org_a, a = people.tenant("TenantA")
    org_b, b = people.tenant("TenantB")
    image = upload(a, "secret.png", png(3, 3), "image/png").json()
    # a customer organization below A, whose user sees devices only
    sub = a.post("/api/orgs", json={"name": "Customer", "parent_id": org_a}).json()["id"]
    role = a.post("/api/roles", json={"name": "Viewer", "permissions": ["devices.view"], "org_id": sub}).json()
    customer = people.keep(invite_and_join(acc, a, sub, f"customer-{uuid.uuid4().hex[:6]}@example.com", role["id"]))

    assert b.get(image["url"]).status_code == 404
    assert b.get(IMAGES, params={"org_id": org_a}).status_code == 404
    assert image["id"] not in [i["id"] for i in b.get(IMAGES).json()]
    assert b.delete(f"{IMAGES}/{image['id']}").status_code == 404
    assert upload(b, "planted.png", png(5, 5), "image/png", org_id=org_a).status_code == 404
    assert stored(acc, org_a) == 1 and stored(acc, org_b) == 0

    assert customer.get(image["url"]).status_code == 200  # its devices may use A's templates
    assert customer.get(IMAGES).status_code == 403  # but it does not see templates: no library
    assert customer.delete(f"{IMAGES}/{image['id']}").status_code == 403
    assert upload(a, "for the customer.png", png(6, 6), "image/png", org_id=sub).json()["org_id"] == sub
    assert a.get(image["url"]).status_code == 200


def _template(api: Api) -> int:
    tid = int(api.post("/api/console/templates", json={"name": f"Lamp {uuid.uuid4().hex[:6]}"}).json()["id"])
    r = api.post(
        f"/api/console/templates/{tid}/datastreams",
        json={"pin": "V1", "name": "Lamp", "type": "integer", "min": 0, "max": 1},
    )
    assert r.status_code == 200, r.text
    return tid


def test_image_buttons_show_images_of_the_templates_organization(acc: AccountsStack, people: People) -> None:
    _org_a, a = people.tenant("Buttons")
    _org_b, b = people.tenant("Other")
    off = upload(a, "off.png", png(4, 4, (0, 0, 0)), "image/png").json()["id"]
    on = upload(a, "on.png", png(4, 4, (250, 200, 0)), "image/png").json()["id"]
    theirs = upload(b, "theirs.png", png(4, 4, (1, 2, 3)), "image/png").json()["id"]
    tid = _template(a)
    url = f"/api/console/templates/{tid}/mobile-dashboard"
    button = {"id": "lamp", "type": "image_button", "pin": 1, "mode": "switch", "off_image": off, "on_image": on}
    r = a.put(url, json={"widgets": [button]})
    assert r.status_code == 200, r.text
    assert r.json()["widgets"] == [button]
    for widget, message in [
        ({**button, "on_image": theirs}, f"image {theirs} is not in the image library of the template's organization"),
        ({k: v for k, v in button.items() if k != "on_image"}, "needs an image for on and one for off"),
        ({"id": "b", "type": "button", "pin": 1, "on_image": on}, "only an image button has images"),
    ]:
        r = a.put(url, json={"widgets": [widget]})
        assert r.status_code == 400 and message in error(r), (widget, r.text)

    r = a.delete(f"{IMAGES}/{on}")
    assert r.status_code == 409 and "shows this image on its mobile dashboard" in error(r)
    device = a.post("/api/console/devices", json={"name": "Lamp 1", "template_id": tid}).json()
    assert a.get(f"/app/api/devices/{device['id']}").json()["dashboard"] == [button]
    assert a.put(url, json={"widgets": []}).status_code == 200
    assert a.delete(f"{IMAGES}/{on}").status_code == 204  # no longer shown
    assert a.get(f"/templates/{tid}?tab=mobile").status_code == 200
