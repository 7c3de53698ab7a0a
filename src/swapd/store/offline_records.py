"""The records of swaps a station served offline and replays (swapd.services.swaps.offline): the
station's local list as it last accepted it, the replayed events, and who held a pack then.
Part of ``Repository`` (a mixin over its connection), kept apart for its size."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from swapd.store import schema as t
from swapd.store.prepared import Prepared

_B = sa.bindparam
_LISTED = Prepared(
    sa.select(t.local_list_entries.c.status).where(
        t.local_list_entries.c.station_id == _B("station_id"),
        t.local_list_entries.c.token_type == _B("token_type"),
        t.local_list_entries.c.id_token == _B("value"),
    )
)
_INSERT_OFFLINE_EVENT = Prepared(
    sa.insert(t.offline_events).from_select(
        [
            "station_id",
            "request_id",
            "event_type",
            "occurred_at",
            "rider_id",
            "connection_id",
            "received_at",
        ],
        sa.select(
            t.stations.c.id,
            _B("request_id", type_=sa.String),
            _B("event_type", type_=sa.String),
            _B("occurred_at", type_=t.offline_events.c.occurred_at.type),
            _B("rider_id", type_=sa.String),
            t.stations.c.connection_id,
            _B("received_at", type_=t.offline_events.c.received_at.type),
        ).where(t.stations.c.id == _B("station_id")),
    )
)


class OfflineRecords:
    """The offline replays' reads and writes, on ``self.conn`` (``Repository``'s connection)."""

    conn: sa.Connection

    def listed_status(self, station_id: str, token_type: str, id_token: str) -> str | None:
        """The status the station's local list gives the token, as it last accepted it."""
        where = {"station_id": station_id, "token_type": token_type, "value": id_token}
        row = _LISTED.run(self.conn, where).first()
        return None if row is None else str(row.status)

    def record_offline_event(
        self,
        station_id: str,
        request_id: str,
        event_type: str,
        occurred_at: datetime,
        rider_id: str | None,
        now: datetime,
    ) -> None:
        """A replayed event, under the station's current connection (its offline spell's)."""
        values = {
            "station_id": station_id,
            "request_id": request_id,
            "event_type": event_type,
            "occurred_at": occurred_at,
            "rider_id": rider_id,
            "received_at": now,
        }
        _INSERT_OFFLINE_EVENT.run(self.conn, values)

    def offline_handovers(self, station_id: str, rider_id: str) -> int:
        """The rider's hand-overs the station replayed over its current connection: one offline
        spell's, since a station replays its whole queue when it is back."""
        e, s = t.offline_events.c, t.stations.c
        query = (
            sa.select(sa.func.count())
            .select_from(t.offline_events)
            .join(t.stations, s.id == e.station_id)
            .where(
                e.station_id == station_id,
                e.rider_id == rider_id,
                e.event_type == "BatteryOut",
                sa.or_(e.connection_id == s.connection_id, s.connection_id.is_(None)),
            )
        )
        return int(self.conn.execute(query).scalar_one())

    def holder_at(self, serial: str, at: datetime) -> str | None:
        """The rider who held the pack at ``at`` (handed over then or before, returned then or
        after, or not yet), by its possessions: who a replayed reading of it is about."""
        p = t.possessions.c
        query = (
            sa.select(p.rider_id)
            .where(
                p.pack_serial == serial,
                p.at_out <= at,
                sa.or_(p.at_in.is_(None), p.at_in >= at),
            )
            .order_by(p.at_out.desc(), p.id.desc())
            .limit(1)
        )
        rider_id: str | None = self.conn.execute(query).scalar()
        return rider_id

    def latest_offline_at(self, station_id: str) -> datetime | None:
        """The latest time among the events the station replayed."""
        query = sa.select(sa.func.max(t.offline_events.c.occurred_at)).where(
            t.offline_events.c.station_id == station_id
        )
        latest: datetime | None = self.conn.execute(query).scalar()
        return latest
