"""Static tokens of a manufacturer (Blynk's "Static Tokens"): made per template and
organization, generated or imported from a CSV whose columns map to metadata fields, listed,
and exported with their secrets (``tokens.view``) as CSV or QR labels.

Tables: ``static_token`` (migration 0018), reached in plain SQL. The device rows appear later,
when the token is first used (``activation`` and ``claims``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping
from sqlmodel.ext.asyncio.session import AsyncSession

from backend.access.scope import Scope, template_above
from backend.audit.services import AuditService
from backend.csvcells import safe_row
from backend.db.sql import fetch_all, fetch_one
from backend.errors import NotFoundError, ValidationError
from backend.inject.codes import ClaimCode
from backend.security import AuthToken, Secrets
from backend.templates.meta import check_meta_value, custom_spec

UNCLAIMED, CLAIMED = "UNCLAIMED", "CLAIMED"
MAX_CSV_BYTES = 4 * 1024 * 1024
_COLUMNS = """s.id, s.org_id, s.template_id, t.public_id AS template_public, t.name AS template_name, s.meta,
    s.device_id, s.claimed_org_id, s.owner_id, s.claimed_at, s.created_at"""


@dataclass(frozen=True, slots=True)
class StaticToken:
    """A static token as listed (no secrets)."""

    id: int
    org_id: int
    template_id: int
    template_public: str
    template_name: str
    meta: dict[str, str]
    device_id: int | None
    claimed_org_id: int | None
    owner_id: int | None
    claimed_at: datetime | None
    created_at: datetime

    @property
    def status(self) -> str:
        """``CLAIMED`` once someone claimed it (until unclaimed), else ``UNCLAIMED``."""
        return CLAIMED if self.claimed_at is not None else UNCLAIMED


@dataclass(frozen=True, slots=True)
class Issued:
    """A static token with its secrets in clear: the device's auth token and the claim code."""

    token: StaticToken
    auth_token: AuthToken
    claim_code: ClaimCode


def _row(r: RowMapping) -> StaticToken:
    meta = r["meta"] if isinstance(r["meta"], dict) else json.loads(r["meta"])
    return StaticToken(**{**dict(r), "meta": {str(k): str(v) for k, v in meta.items()}})


class StaticTokens:
    """Static tokens of the organizations in one principal's scope."""

    def __init__(self, session: AsyncSession, scope: Scope, audit: AuditService, secrets: Secrets, batch: int) -> None:
        self.session = session
        self.scope = scope
        self.audit = audit
        self.secrets = secrets
        self.batch = batch

    async def generate(self, template_id: int, count: int, org_id: int | None = None) -> list[StaticToken]:
        """``count`` new static tokens of a template, in the organization (default: the caller's)."""
        org = await self._target(template_id, org_id)
        return await self._make(template_id, [{} for _ in range(self._count(count))], org)

    async def import_csv(
        self, template_id: int, text: str, mapping: dict[str, str], org_id: int | None = None
    ) -> list[StaticToken]:
        """One static token per CSV row (first line: the column names); ``mapping`` names, for
        each column kept, the template's metadata field its values go to."""
        if len(text.encode()) > MAX_CSV_BYTES:
            raise ValidationError(f"the CSV file is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB")
        org = await self._target(template_id, org_id)
        if not mapping:
            raise ValidationError("map at least one column to a metadata field")
        specs = {
            r["name"]: custom_spec(r["field_id"], r["name"], r["type"], r["default_value"])
            for r in await fetch_all(
                self.session,
                "SELECT field_id, name, type, default_value FROM meta_field WHERE template_id = :t",
                t=template_id,
            )
        }
        unknown = sorted(set(mapping.values()) - set(specs))
        if unknown:
            raise ValidationError(f"the template has no metadata field {unknown[0][:64]!r}")
        reader = csv.DictReader(io.StringIO(text))
        missing = sorted(set(mapping) - set(reader.fieldnames or []))
        if missing:
            raise ValidationError(f"the CSV file has no column {missing[0][:64]!r}")
        rows: list[dict[str, str]] = []
        for line, record in enumerate(reader, start=2):
            try:
                rows.append({f: check_meta_value(specs[f], (record.get(c) or "").strip()) for c, f in mapping.items()})
            except ValidationError as exc:
                raise ValidationError(f"line {line}: {exc.message}") from exc
        self._count(len(rows))
        return await self._make(template_id, rows, org)

    async def page(self, template_id: int | None, page: int, size: int) -> tuple[list[StaticToken], int]:
        """A page of the static tokens of the scope's organizations, oldest first, and the total."""
        where, params = await self._where(template_id)
        total = await fetch_one(self.session, f"SELECT count(*) AS n FROM static_token s WHERE {where}", **params)
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM static_token s JOIN template t ON t.id = s.template_id WHERE {where} "
            "ORDER BY s.id LIMIT :size OFFSET :skip",
            **params,
            size=size,
            skip=page * size,
        )
        return [_row(r) for r in rows], int(total["n"]) if total else 0

    async def issued(self, template_id: int | None, ids: list[int] | None = None) -> list[Issued]:
        """The static tokens of a template (or every one of the scope), or those of ``ids``, with
        their secrets (``tokens.view``; audited)."""
        where, params = await self._where(template_id)
        if ids is not None:
            where += " AND s.id = ANY(:ids)"
            params["ids"] = ids
        rows = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS}, s.token_encrypted, s.claim_encrypted FROM static_token s "
            f"JOIN template t ON t.id = s.template_id WHERE {where} ORDER BY s.id",
            **params,
        )
        if not rows:
            raise NotFoundError("no static tokens of that template")
        out = [
            Issued(
                _row({k: v for k, v in r.items() if not k.endswith("_encrypted")}),  # type: ignore[arg-type]
                self.secrets.decrypt_token(r["token_encrypted"]),
                ClaimCode(self.secrets.decrypt_token(r["claim_encrypted"]).value),
            )
            for r in rows
        ]
        await self.audit.record(
            self.scope.principal, rows[0]["org_id"], "static_token.export", "template", template_id, count=len(out)
        )
        return out

    async def _where(self, template_id: int | None) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"orgs": sorted(await self.scope.org_ids())}
        where = "s.org_id = ANY(:orgs)"
        if template_id is not None:
            await self._require_template(template_id)
            where += " AND s.template_id = :template"
            params["template"] = template_id
        return where, params

    async def _require_template(self, template_id: int) -> None:
        """Refuse a template the caller cannot see (one of the scope's organizations, or above
        the caller's own) exactly as one that does not exist."""
        row = await fetch_one(self.session, "SELECT org_id FROM template WHERE id = :t", t=template_id)
        if row is None or (
            row["org_id"] not in await self.scope.org_ids()
            and not await template_above(self.session, template_id, self.scope.principal.org_id)
        ):
            raise NotFoundError("template not found")

    def _count(self, count: int) -> int:
        if not 1 <= count <= self.batch:
            raise ValidationError(f"make between 1 and {self.batch} static tokens at once")
        return count

    async def _target(self, template_id: int, org_id: int | None) -> int:
        """The organization new tokens go to (default: the caller's), after checking that it is
        in scope and may use the template."""
        org = org_id if org_id is not None else self.scope.principal.org_id
        await self.scope.require_org(org)
        if not await template_above(self.session, template_id, org):
            raise NotFoundError("template not found")
        return org

    async def _make(self, template_id: int, metas: list[dict[str, str]], org: int) -> list[StaticToken]:
        tokens = [AuthToken.generate() for _ in metas]
        codes = [ClaimCode.generate() for _ in metas]
        rows = await fetch_all(
            self.session,
            """INSERT INTO static_token (org_id, template_id, token_hmac, token_encrypted, claim_hmac, claim_encrypted, meta)
            SELECT :org, :template, th, te, ch, ce, CAST(m AS jsonb)
            FROM unnest(CAST(:th AS bytea[]), CAST(:te AS text[]), CAST(:ch AS bytea[]), CAST(:ce AS text[]),
                        CAST(:m AS text[])) WITH ORDINALITY AS u(th, te, ch, ce, m, n)
            ORDER BY n RETURNING id""",
            org=org,
            template=template_id,
            th=[self.secrets.token_hmac(t) for t in tokens],
            te=[self.secrets.encrypt_token(t) for t in tokens],
            ch=[self.secrets.token_hmac(c.sealed()) for c in codes],
            ce=[self.secrets.encrypt_token(c.sealed()) for c in codes],
            m=[json.dumps(m) for m in metas],
        )
        ids = [int(r["id"]) for r in rows]
        await self.audit.record(
            self.scope.principal, org, "static_token.generate", "template", template_id, count=len(ids)
        )
        made = await fetch_all(
            self.session,
            f"SELECT {_COLUMNS} FROM static_token s JOIN template t ON t.id = s.template_id "
            "WHERE s.id = ANY(:ids) ORDER BY s.id",
            ids=ids,
        )
        return [_row(r) for r in made]


def csv_export(issued: list[Issued]) -> str:
    """The CSV a factory flashes from: one line per token, metadata columns last (escaped as
    every export's cells; tokens and codes are ours, of ``[-_A-Za-z0-9]``, and stay exact)."""
    fields = sorted({k for i in issued for k in i.token.meta})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "template_id", "auth_token", "claim_code", "status", "device_id", *fields])
    for i in issued:
        t = i.token
        writer.writerow(
            [
                t.id,
                t.template_public,
                i.auth_token.value,
                i.claim_code.value,
                t.status,
                t.device_id or "",
                *safe_row(t.meta.get(f, "") for f in fields),
            ]
        )
    return out.getvalue()
