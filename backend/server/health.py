"""``/healthz``: liveness and the state of the parts; ``/readyz``: whether the app can do its
work now (the database answers, the broker connection is up, the ingest runs), 503 with the
reasons when not, for a load balancer or an orchestrator's readiness probe."""

from __future__ import annotations

import asyncio

import psycopg
import psycopg_pool
from litestar import MediaType, Response, get

from backend.connections import PublicRequest
from backend.server.container import Runtime, runtime

READY_TIMEOUT_SECONDS = 2.0
"""How long /readyz waits for the database to answer."""


@get("/healthz", media_type=MediaType.JSON)
async def health(request: PublicRequest) -> dict[str, object]:
    """Liveness and the broker connection state."""
    rt = runtime(request.app)
    return {
        "status": "ok",
        "broker_connected": rt.mqtt.connected,
        "scheduler_leader": rt.scheduler.is_leader.is_set(),
        "automations": rt.automations.loaded,
        "ingested": rt.ingest.processed,
        "history_rows": rt.history.rows_written,
        "unacknowledged": rt.mqtt.unacknowledged,
    }


@get("/readyz", media_type=MediaType.JSON)
async def ready(request: PublicRequest) -> Response[dict[str, object]]:
    """200 when the database answers, the broker connection is up and the ingest runs; else
    503 with the reason of each part that is not ready."""
    rt = runtime(request.app)
    reasons = [r for r in (await _database_problem(rt), _broker_problem(rt), _ingest_problem(rt)) if r]
    body: dict[str, object] = {"status": "not ready" if reasons else "ready", "reasons": reasons}
    return Response(body, status_code=503 if reasons else 200, media_type=MediaType.JSON)


async def _database_problem(rt: Runtime) -> str | None:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            async with rt.db.pool.connection(timeout=READY_TIMEOUT_SECONDS) as conn:
                await conn.execute("SELECT 1")
    except (TimeoutError, psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"database unreachable: {first}"
    return None


def _broker_problem(rt: Runtime) -> str | None:
    return None if rt.mqtt.connected else "broker connection down"


def _ingest_problem(rt: Runtime) -> str | None:
    return None if rt.pump.running else "ingest not running"
