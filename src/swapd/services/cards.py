"""A rider's RFID cards: register one, remove one. The list of cards is a read model
(``readmodels.riders.cards``)."""

from __future__ import annotations

import sqlalchemy as sa

from swapd.domain.errors import Conflict, NotFound
from swapd.domain.riders import TokenOwner, TokenType
from swapd.services import catalog
from swapd.store import schema as t
from swapd.store.database import Database, Tx

RFID_UID_PATTERN = r"^[0-9A-Fa-f]{8}([0-9A-Fa-f]{6}([0-9A-Fa-f]{6})?)?$"  # 4, 7 or 10 bytes


def normalise_uid(uid: str) -> str:
    """Card UIDs as stations report ISO14443 idTokens: hex, upper case."""
    return uid.upper()


def add_card(db: Database, rider_id: str, uid: str) -> bool:
    """Register a card for the rider; False if it was theirs already (a repeat changes nothing).
    A card that is anyone else's (another rider's, or a staff card) is a conflict."""
    uid = normalise_uid(uid)

    def owner(tx: Tx) -> TokenOwner | None:
        return tx.repo.token_owner(TokenType.RFID.value, uid)

    found = db.read(owner)
    if found is not None:
        if found.rider_id == rider_id:
            return False
        raise Conflict("this card is registered to another account")
    try:
        catalog.add_token(db, TokenType.RFID, uid, rider_id=rider_id)
    except Conflict:
        # Registered between our read and the insert: by this rider (a concurrent repeat) or not.
        again = db.read(owner)
        if again is not None and again.rider_id == rider_id:
            return False
        raise Conflict("this card is registered to another account") from None
    return True


def remove_card(db: Database, rider_id: str, uid: str) -> None:
    uid = normalise_uid(uid)

    def work(tx: Tx) -> None:
        c = t.id_tokens.c
        removed = tx.repo.execute(
            sa.delete(t.id_tokens).where(
                c.type == TokenType.RFID.value, c.value == uid, c.rider_id == rider_id
            )
        )
        if removed.rowcount != 1:
            # The same answer whether the card is unknown or someone else's: ids reveal nothing.
            raise NotFound(f"no card {uid} on your account")
        tx.repo.note_list_change(tx.now)  # the stations' lists drop the card

    db.write(work)
