"""Idempotency-Key for HTTP requests that move money.

The first answer to (caller, key) is stored and returned again for every repeat of the same
request, so a client that lost the response can retry safely. The same key with a different
request is refused. The services underneath are idempotent by their own keys too (derived from the
Idempotency-Key), so two concurrent first attempts still move money once; the loser of the race
to store the answer returns the winner's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from swapd.domain.errors import Conflict, InvalidInput
from swapd.store import schema as t
from swapd.store.database import Database, Tx

MAX_KEY_CHARS = 200


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: Any
    replayed: bool = False


def check_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS or not key.isprintable():
        raise InvalidInput(
            f"an Idempotency-Key header of 1-{MAX_KEY_CHARS} printable characters is required"
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(tx: Tx, owner: str, key: str) -> sa.Row[Any] | None:
    return tx.repo.execute(
        sa.select(t.idempotency_keys).where(
            t.idempotency_keys.c.owner == owner, t.idempotency_keys.c.key == key
        )
    ).first()


def _replay(row: sa.Row[Any], request_sha256: str) -> Answer:
    if row.request_sha256 != request_sha256:
        raise Conflict("this Idempotency-Key was used for a different request")
    return Answer(row.status_code, row.response, replayed=True)


def run_once(
    db: Database, owner: str, key: str, request_sha256: str, work: Callable[[], Answer]
) -> Answer:
    """``work`` runs unless this (owner, key) has an answer already. Errors are not stored: a
    refused request may be corrected and retried under the same key."""
    key = check_key(key)
    row = db.read(lambda tx: _stored(tx, owner, key))
    if row is not None:
        return _replay(row, request_sha256)
    answer = work()

    def store(tx: Tx) -> Answer:
        existing = _stored(tx, owner, key)
        if existing is not None:
            return _replay(existing, request_sha256)
        tx.repo.execute(
            sa.insert(t.idempotency_keys).values(
                owner=owner,
                key=key,
                request_sha256=request_sha256,
                status_code=answer.status_code,
                response=answer.body,
                created_at=tx.now,
            )
        )
        return answer

    return db.write(store)
