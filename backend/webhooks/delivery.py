"""Delivering webhooks: :class:`WebhookSender`, one per app process.

``await sender.fire(webhook_id, org_id, context, trigger=...)`` delivers one webhook now (an
automation's action, the console's "send test"); the trigger listeners hand theirs to
:meth:`WebhookSender.enqueue`, a bounded queue that a few worker tasks empty, so a slow
receiver never holds up the ingest. Each call, in order:

1. loads the webhook (of that organization; a disabled one is refused unless it is a test);
2. Blynk's rate limit: 10 requests a minute per webhook (counted in PostgreSQL across every
   app process, :mod:`backend.webhooks.limits`); over it nothing is
   sent and the call is logged as refused (once in 10 seconds per webhook, so a device
   sending every 100 ms does not fill the log);
3. renders URL, headers and body with the placeholders of ``context``; a body over 5 KB is
   refused;
4. resolves the host and checks every address (:mod:`backend.webhooks.guard`), then sends to
   the checked address, signed (:mod:`backend.webhooks.signing`), with timeouts; reads at
   most 16 KB of the response; follows a redirect only to the same scheme, host and port;
5. retries after a connection error, a timeout or a 5xx answer, waiting ``backoff_s``, then
   twice that, up to ``attempts`` tries;
6. logs the outcome in ``webhook_delivery`` and counts failures in a row: at
   ``failure_limit`` the webhook is disabled and the organization's admins are told.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from backend.db.changes import CHANNEL
from backend.errors import ValidationError
from backend.tasks import cancel
from backend.webhooks import signing
from backend.webhooks.guard import AddressGuard, IPAddress
from backend.webhooks.limits import MinuteWindow
from backend.webhooks.requests import (
    MAX_BODY_BYTES,
    MAX_RESPONSE_BYTES,
    BodyKind,
    Rendered,
    RequestSpec,
    render_request,
    with_blynk_names,
)
from backend.webhooks.signing import SecretBox

log = logging.getLogger(__name__)

PER_MINUTE = 10
"""Blynk's limit: requests a minute per webhook."""
MAX_REDIRECTS = 3
LOG_HEAD_CHARS = MAX_RESPONSE_BYTES

_LOAD_SQL = """SELECT w.id, w.org_id, w.name, w.enabled, w.method, w.url, w.headers, w.body_kind, w.body_template,
       w.secret, o.name AS org_name
FROM webhook w JOIN organization o ON o.id = w.org_id WHERE w.id = %s AND w.org_id = %s"""
_LOG_SQL = """INSERT INTO webhook_delivery
    (webhook_id, org_id, trigger, request, ok, refused, status, response_head, error, attempt, duration_ms)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"""
_FAILED_SQL = "UPDATE webhook SET failures = failures + 1 WHERE id = %s RETURNING failures"
_DISABLE_SQL = """UPDATE webhook SET enabled = false, disabled_reason = %s, updated_at = now()
WHERE id = %s AND enabled AND failures >= %s RETURNING name"""
_SUCCEEDED_SQL = "UPDATE webhook SET failures = 0 WHERE id = %s AND failures <> 0"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one :meth:`WebhookSender.fire`."""

    ok: bool
    status: int | None
    error: str | None
    refused: bool = False
    """Nothing was sent (rate limit, body size, address guard, disabled webhook)."""
    attempts: int = 0
    response_head: str = ""
    """What was read of the response (at most 16 KB), as text."""
    response_bytes: int = 0
    duration_ms: int = 0


class DisabledAlert(Protocol):
    """Who is told that a webhook was disabled (:class:`backend.webhooks.alerts.AdminAlerts`)."""

    async def webhook_disabled(self, org_id: int, webhook_id: int, name: str, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class _Attempt:
    status: int | None
    head: bytes
    error: str | None

    @property
    def retry(self) -> bool:
        return self.status is None or self.status >= 500


Planned = tuple[int, int, Mapping[str, str], str]
"""A delivery to make: webhook id, organization id, placeholder values, trigger."""
Planner = Callable[[], Awaitable[Sequence[Planned]]]
"""What a trigger queues: reads what it needs (names for the placeholders) when a worker runs it."""


class WebhookSender:
    """Delivers webhooks (see the module's docstring)."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        guard: AddressGuard,
        box: SecretBox,
        *,
        failure_limit: int,
        alert: DisabledAlert | None = None,
        per_minute: int = PER_MINUTE,
        attempts: int = 3,
        backoff_s: float = 1.0,
        timeout_s: float = 10.0,
        queue_size: int = 1000,
        workers: int = 4,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        trust: ssl.SSLContext | None = None,
    ) -> None:
        self.pool = pool
        self.guard = guard
        self.box = box
        """Opens the stored secrets (and seals new ones, for the service)."""
        self.failure_limit = failure_limit
        self.alert = alert
        self.window = MinuteWindow(pool, per_minute, clock)
        """Requests a minute per webhook, counted across every app process (``clock``: tests')."""
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.workers = workers
        self.sleep = sleep
        self.trust: ssl.SSLContext | bool = trust or True
        """How receivers' certificates are checked: the system's CAs unless given (tests)."""
        self._queue: asyncio.Queue[Planner] = asyncio.Queue(maxsize=queue_size)
        self._tasks: list[asyncio.Task[None]] = []

    # -- the queue of triggered deliveries ----------------------------------------------------
    def start(self) -> None:
        """Start the workers that empty the queue."""
        self._tasks = [asyncio.create_task(self._work(), name=f"webhook-worker-{n}") for n in range(self.workers)]

    async def stop(self) -> None:
        """Stop the workers; deliveries still queued are dropped (and logged as such)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            await cancel(task)
        if not self._queue.empty():
            log.warning("%d queued webhook deliveries dropped at shutdown", self._queue.qsize())

    def enqueue(self, webhook_id: int, org_id: int, context: Mapping[str, str], trigger: str) -> bool:
        """Deliver later, in a worker; False (and a warning) when the queue is full."""

        async def planned() -> Sequence[Planned]:
            return [(webhook_id, org_id, context, trigger)]

        return self.enqueue_lazy(planned)

    def enqueue_lazy(self, plan: Planner) -> bool:
        """Run ``plan`` in a worker and make the deliveries it returns; False (and a warning)
        when the queue is full."""
        try:
            self._queue.put_nowait(plan)
        except asyncio.QueueFull:
            log.warning("webhook queue full (%d): a triggered delivery was dropped", self._queue.maxsize)
            return False
        return True

    async def _work(self) -> None:
        while True:
            plan = await self._queue.get()
            try:
                for webhook_id, org_id, context, trigger in await plan():
                    await self.fire(webhook_id, org_id, context, trigger=trigger)
            except Exception:
                log.exception("a triggered webhook delivery failed")
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued delivery is done (tests)."""
        await self._queue.join()

    # -- one delivery -------------------------------------------------------------------------
    async def fire(
        self, webhook_id: int, org_id: int, context: Mapping[str, str], *, trigger: str, test: bool = False
    ) -> Delivery:
        """Deliver webhook ``webhook_id`` of ``org_id`` with ``context``'s placeholder values;
        ``test`` (the console's "send test") also sends a disabled webhook and counts no
        failure. Every outcome but an unknown webhook is logged in ``webhook_delivery``."""
        async with self.pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            hook = await (await cur.execute(_LOAD_SQL, (webhook_id, org_id))).fetchone()
        if hook is None:
            return Delivery(False, None, "no such webhook", refused=True)
        values = with_blynk_names(
            {
                "ORG_ID": str(org_id),
                "ORG_NAME": hook["org_name"],
                "WEBHOOK_NAME": hook["name"],
                "TIMESTAMP": datetime.now(UTC).isoformat(timespec="seconds"),
                **context,
            }
        )
        spec = RequestSpec(
            hook["method"], hook["url"], dict(hook["headers"]), BodyKind(hook["body_kind"]), hook["body_template"]
        )
        rendered = render_request(spec, values)
        try:
            summary = _summary(rendered)
        except httpx.InvalidURL:
            summary = f"{rendered.method} (an invalid URL)"
            refusal: str | None = "the URL is not valid once its placeholders are put in"
        else:
            refusal = await self._refusal(hook, rendered, test)
        if refusal is not None:
            outcome = Delivery(False, None, refusal, refused=True)
            if refusal == self.rate_refusal and not self.window.refusal_to_log(hook["id"]):
                return outcome  # one refusal a webhook is logged per limits.REFUSAL_LOG_S: no flood in the log
        else:
            outcome = await self._opened_and_delivered(rendered, hook["secret"])
        await self._record(hook, trigger, summary, outcome, count=not test and refusal != self.rate_refusal)
        return outcome

    @property
    def rate_refusal(self) -> str:
        """The error of a delivery refused by the rate limit (the one refusal that is no failure)."""
        return f"over the limit of {self.window.limit} requests a minute: not sent"

    async def _refusal(self, hook: Mapping[str, Any], rendered: Rendered, test: bool) -> str | None:
        if not hook["enabled"] and not test:
            return "the webhook is disabled"
        if len(rendered.body) > MAX_BODY_BYTES:
            return f"the body has {len(rendered.body)} bytes, over the limit of {MAX_BODY_BYTES} (5 KB)"
        if not await self.window.take(hook["id"]):
            return self.rate_refusal
        return None

    async def _opened_and_delivered(self, rendered: Rendered, sealed: str) -> Delivery:
        try:
            secret = self.box.open(sealed)
        except ValidationError as exc:
            return Delivery(False, None, exc.message, refused=True)
        return await self._deliver(rendered, secret)

    async def _deliver(self, rendered: Rendered, secret: str) -> Delivery:
        started = time.monotonic()
        url = httpx.URL(rendered.url)
        try:
            target = await self.guard.target(url.host, url.port or (443 if url.scheme == "https" else 80))
        except ValidationError as exc:
            return Delivery(False, None, exc.message, refused=True, duration_ms=_ms(started))
        attempt, tries = _Attempt(None, b"", "not sent"), 0
        while tries < self.attempts:
            if tries:
                await self.sleep(self.backoff_s * 2 ** (tries - 1))
            tries += 1
            attempt = await self._attempt(rendered, secret, url, target.address)
            if not attempt.retry:
                break
        ok = attempt.status is not None and 200 <= attempt.status < 300
        error = attempt.error or (None if ok else f"the receiver answered {attempt.status}")
        head = attempt.head.decode("utf-8", "replace")[:LOG_HEAD_CHARS]
        return Delivery(ok, attempt.status, error, False, tries, head, len(attempt.head), _ms(started))

    async def _attempt(self, rendered: Rendered, secret: str, url: httpx.URL, address: IPAddress) -> _Attempt:
        """One try, following same-origin redirects, within twice the timeout in all."""
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                async with httpx.AsyncClient(
                    timeout=self.timeout_s, follow_redirects=False, trust_env=False, verify=self.trust
                ) as client:
                    method, body = rendered.method, rendered.body
                    for _ in range(MAX_REDIRECTS + 1):
                        status, head, location = await self._send(client, method, url, rendered, body, secret, address)
                        if location is None:
                            return _Attempt(status, head, None)
                        nxt = url.join(location)
                        if (nxt.scheme, nxt.host, nxt.port) != (url.scheme, url.host, url.port):
                            return _Attempt(status, head, f"a redirect to another host was refused ({nxt.host})")
                        url = nxt
                        if status == 303:
                            method, body = "GET", b""
                    return _Attempt(status, head, "too many redirects")
        except TimeoutError:
            return _Attempt(None, b"", "timed out")
        except httpx.HTTPError as exc:
            return _Attempt(None, b"", f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

    async def _send(
        self,
        client: httpx.AsyncClient,
        method: str,
        url: httpx.URL,
        rendered: Rendered,
        body: bytes,
        secret: str,
        address: IPAddress,
    ) -> tuple[int, bytes, str | None]:
        """Send to ``address`` (pinned), host name in ``Host`` and SNI; the status, at most
        16 KB of the body, and a redirect's location."""
        headers = {
            **rendered.headers,
            "Host": url.netloc.decode("ascii"),
            "User-Agent": "openblynk-webhook/1",
            "Accept-Encoding": "identity",
            **signing.headers(secret, int(time.time()), body),
        }
        if not body:
            headers.pop("Content-Type", None)
        extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
        request = client.build_request(
            method, url.copy_with(host=str(address)), headers=headers, content=body or None, extensions=extensions
        )
        response = await client.send(request, stream=True)
        try:
            head = bytearray()
            async for chunk in response.aiter_raw():
                head += chunk
                if len(head) >= MAX_RESPONSE_BYTES:
                    break
            location = response.headers.get("location") if response.is_redirect else None
            return response.status_code, bytes(head[:MAX_RESPONSE_BYTES]), location
        finally:
            await response.aclose()

    # -- the log and the failure count --------------------------------------------------------
    async def _record(
        self, hook: Mapping[str, Any], trigger: str, summary: str, outcome: Delivery, *, count: bool
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                _LOG_SQL,
                (
                    hook["id"],
                    hook["org_id"],
                    trigger,
                    summary,
                    outcome.ok,
                    outcome.refused,
                    outcome.status,
                    outcome.response_head.replace("\x00", ""),
                    outcome.error,
                    max(outcome.attempts, 1),
                    outcome.duration_ms,
                ),
            )
            if outcome.ok:
                await conn.execute(_SUCCEEDED_SQL, (hook["id"],))
                return
            if not count:
                return
            failures = (await (await conn.execute(_FAILED_SQL, (hook["id"],))).fetchone() or (0,))[0]
            if failures < self.failure_limit:
                return
            reason = f"{failures} failed deliveries in a row, the last: {outcome.error}"
            disabled = await (await conn.execute(_DISABLE_SQL, (reason, hook["id"], self.failure_limit))).fetchone()
            if disabled is None:
                return  # already disabled (by another process, or a delivery at the same time)
            await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"webhook:{hook['id']}"))
        log.warning("webhook %s of organization %s disabled: %s", hook["id"], hook["org_id"], reason)
        if self.alert is not None:
            await self.alert.webhook_disabled(hook["org_id"], hook["id"], hook["name"], reason)


def _summary(rendered: Rendered) -> str:
    """The request as the log shows it: method, URL without its query, body size."""
    url = httpx.URL(rendered.url)
    return f"{rendered.method} {url.copy_with(query=None, fragment=None)} ({len(rendered.body)} bytes)"


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
