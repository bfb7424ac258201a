"""Reading the automation log: runs, newest first, each with its actions' outcomes (the engine
writes them; :mod:`backend.automations.retention` trims them)."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.automations.schemas import RunOut, StepOut
from backend.db.sql import fetch_all, fetch_one

_WHERE = "r.org_id = ANY(:orgs) AND (CAST(:automation AS bigint) IS NULL OR r.automation_id = :automation)"


async def read_runs(
    session: AsyncSession, orgs: list[int], automation_id: int | None, page: int, size: int
) -> tuple[list[RunOut], int]:
    """A page of the runs of ``orgs`` (of one automation when given), and how many there are."""
    rows = await fetch_all(
        session,
        "SELECT r.*, a.name AS automation_name, d.name AS trigger_device_name, count(*) OVER () AS total "
        "FROM automation_run r JOIN automation a ON a.id = r.automation_id "
        f"LEFT JOIN device d ON d.id = r.trigger_device_id WHERE {_WHERE} "
        "ORDER BY r.id DESC LIMIT :size OFFSET :offset",
        orgs=orgs,
        automation=automation_id,
        size=size,
        offset=page * size,
    )
    steps = await _steps(session, [int(r["id"]) for r in rows])
    if rows:
        total = int(rows[0]["total"])
    else:  # a page past the end has no row to carry the total
        row = await fetch_one(
            session, f"SELECT count(*) AS n FROM automation_run r WHERE {_WHERE}", orgs=orgs, automation=automation_id
        )
        total = int(row["n"]) if row else 0
    return [_run_out(r, steps.get(int(r["id"]), [])) for r in rows], total


async def _steps(session: AsyncSession, run_ids: list[int]) -> dict[int, list[StepOut]]:
    """Each run's steps, by position."""
    found: dict[int, list[StepOut]] = {}
    if not run_ids:
        return found
    for s in await fetch_all(
        session,
        "SELECT run_id, position, action_type, ok, detail, started_at, duration_ms FROM automation_step "
        "WHERE run_id = ANY(:runs) ORDER BY run_id, position",
        runs=run_ids,
    ):
        found.setdefault(int(s["run_id"]), []).append(
            msgspec.convert({k: v for k, v in s.items() if k != "run_id"}, StepOut)
        )
    return found


def _run_out(row: Any, steps: list[StepOut]) -> RunOut:
    return RunOut(
        id=int(row["id"]),
        automation_id=int(row["automation_id"]),
        automation_name=row["automation_name"],
        trigger=row["trigger"],
        trigger_device_id=row["trigger_device_id"],
        trigger_device_name=row["trigger_device_name"],
        trigger_value=row["trigger_value"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        status=row["status"],
        next_action=int(row["next_action"]),
        resume_at=row["resume_at"],
        steps=steps,
        resumes=int(row["resumes"]),
        note=row["note"],
    )
