"""The audit log: what staff did to money and access, by whom, and why. Written in the same
transaction as the change it describes, so one never exists without the other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import InvalidInput
from swapd.store import schema as t
from swapd.store.database import Database, Tx


def check_reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500:
        raise InvalidInput("a reason (1-500 characters) is required")
    return reason.strip()


def record(
    tx: Tx, actor: str, action: str, target: str, reason: str, detail: dict[str, Any] | None = None
) -> None:
    tx.repo.execute(
        sa.insert(t.audit_log).values(
            at=tx.now, actor=actor, action=action, target=target, reason=reason, detail=detail or {}
        )
    )


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    reason: str
    detail: dict[str, Any]


def entries(
    db: Database, *, target: str | None = None, before_id: int | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Newest first; page with ``before_id``."""
    limit = max(1, min(limit, 1000))

    def work(tx: Tx) -> list[AuditEntry]:
        query = sa.select(t.audit_log).order_by(t.audit_log.c.id.desc()).limit(limit)
        if target is not None:
            query = query.where(t.audit_log.c.target == target)
        if before_id is not None:
            query = query.where(t.audit_log.c.id < before_id)
        return [
            AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.reason, dict(r.detail))
            for r in tx.repo.execute(query)
        ]

    return db.read(work)
