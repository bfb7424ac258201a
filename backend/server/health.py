"""``/healthz``: liveness and the state of the parts."""

from __future__ import annotations

from litestar import MediaType, get

from backend.connections import PublicRequest
from backend.server.container import runtime


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
