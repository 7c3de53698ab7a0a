"""The ``swapd serve`` process: OCPP over WebSocket at /ocpp/{station_id}, /healthz and /metrics.

Security profiles 1 and 2: HTTP Basic auth on the upgrade request (username = the station id in
the URL), inside TLS when a certificate is given. Unknown station: 404; wrong password: 401;
too many failed logins: 429; password checks all busy: 503 (see swapd.gateway.auth).

Security profile 3 (``client_ca``): TLS requires a client certificate of the operator's CA, and
the upgrade its common name to be the station id and its serial not revoked (403 else; see
swapd.gateway.client_certs). Basic auth is then optional, and checked as above when sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.websockets import WebSocketDisconnect

from swapd import __version__
from swapd.api import router as api_router
from swapd.gateway import client_certs, commands, listen, local_lists, presence, writer_calls
from swapd.gateway.auth import Refusal, StationAuth
from swapd.gateway.metrics import GatewayMetrics
from swapd.gateway.protocol import EARLY_REFUSAL, SwapdHTTPProtocol, SwapdWebSocketProtocol
from swapd.gateway.session import Station21, Station201
from swapd.heap import settle_heap
from swapd.services import identity, messages, station_commands, stations, swaps
from swapd.services.stations import StationAccess
from swapd.store import partitions
from swapd.store.database import Database
from swapd.store.replica import is_replica, replica_lag_s
from swapd.web import console

log = structlog.get_logger(__name__)

SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1")
MAX_FRAME_BYTES = 1024 * 1024  # frames above the session's own limit still get a CALLERROR
OFFER_TTL_S = 600  # an offer without any BatterySwap event for this long is abandoned
OFFER_SWEEP_INTERVAL_S = 30
LOGIN_LIMIT_SWEEP_INTERVAL_S = 300
PARTITIONS_INTERVAL_S = 86_400  # months are made MONTHS_AHEAD ahead: a day's delay is harmless
# /healthz answers within a load balancer's patience even when the replica's host does not.
REPLICA_CHECK_TIMEOUT_S = 2.0
SHUTDOWN_TASKS_TIMEOUT_S = 5.0  # background loops get this long to end once cancelled


class StarletteConnection:
    """What ``ocpp``'s ChargePoint needs of a socket, over Starlette's WebSocket."""

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket

    async def recv(self) -> str:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            # OCPP-J is text frames only: a binary frame is garbage, and there is no id to answer.
            await self.close(1003, "OCPP-J uses text frames")
            raise WebSocketDisconnect(1003)
        return str(text)

    async def send(self, message: str) -> None:
        await self._ws.send_text(message)

    async def close(self, code: int, reason: str) -> None:
        with contextlib.suppress(RuntimeError):
            await self._ws.close(code, reason)


@dataclass
class Gateway:
    db: Database
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    sessions: dict[str, Station21 | Station201] = field(default_factory=dict)
    # Profile 3: TLS asks every client for a certificate of the operator's CA (uvicorn_config's
    # client_ca), and the upgrade checks it (swapd.gateway.client_certs).
    client_certificates: bool = False
    # The operator's CA directory (swapd.pki) that signs the CSRs of SignCertificate; without a
    # CA there, SignCertificate is rejected.
    ca_dir: Path | None = None
    auth: StationAuth = field(init=False)

    def __post_init__(self) -> None:
        self.auth = StationAuth(self.db, self.metrics)

    def connected(self) -> list[str]:
        return list(self.sessions)

    def ready(self) -> list[str]:
        """The stations here that may be sent requests: BootNotification accepted (now, or
        before this connection: a station that reconnects without rebooting does not boot)."""
        return [station_id for station_id, session in self.sessions.items() if session.booted]

    def recorded(self) -> dict[str, str]:
        """The stations here whose connection is recorded: station id -> connection id."""
        return {
            station_id: session.connection_id
            for station_id, session in self.sessions.items()
            if session.connection_id is not None
        }

    def ready_connections(self) -> dict[str, str]:
        """``ready`` with each station's recorded connection, for the command dispatcher."""
        return {
            station_id: session.connection_id
            for station_id, session in self.sessions.items()
            if session.booted and session.connection_id is not None
        }

    async def close_connection(
        self, station_id: str, connection_id: str, code: int, reason: str
    ) -> bool:
        """Close the station's socket here if it is still that of ``connection_id`` (the station
        connected again elsewhere, or was disabled: swapd.gateway.presence). False if not here."""
        session = self.sessions.get(station_id)
        if session is None or session.connection_id != connection_id:
            return False
        del self.sessions[station_id]
        await session._connection.close(code, reason)
        return True

    async def disconnect(self, station_id: str, reason: str) -> bool:
        """Close the station's socket in this process (it was disabled); False if none here.
        Its reconnection is then refused with 403 by the upgrade check."""
        session = self.sessions.pop(station_id, None)
        if session is None:
            return False
        # 1008: policy violation, the close code for "you may not stay connected".
        await session._connection.close(1008, reason)
        return True

    async def send_command(
        self, station_id: str, action: str, payload: dict[str, Any]
    ) -> dict[str, Any]:
        """Send one request to a station connected here and return its answer (wire casing).
        The request is checked against its schema first (session.send_request)."""
        session = self.sessions.get(station_id)
        if session is None:
            raise ConnectionError(f"station {station_id} is not connected here")
        try:
            answer = await session.send_request(action, payload)
        except Exception:
            self.metrics.commands.labels(action, "failed").inc()
            raise
        self.metrics.commands.labels(action, "answered").inc()
        return answer


async def _expire_offers_forever(db: Database) -> None:
    """Offers nobody took (the rider walked away, the station lost the event) must not hold
    packs and allowance forever."""
    while True:
        await asyncio.sleep(OFFER_SWEEP_INTERVAL_S)
        try:
            expired = await asyncio.to_thread(swaps.expire_stale_offers, db, older_than_s=OFFER_TTL_S)
            if expired:
                log.info("offers_expired", swaps=expired)
        except Exception:
            log.exception("offer_sweep_failed")


async def _forget_login_windows_forever(db: Database) -> None:
    """Login counters whose window has ended limit nothing; without this sweep every email and
    address ever tried would keep a row, a table any outsider could grow at will."""
    while True:
        await asyncio.sleep(LOGIN_LIMIT_SWEEP_INTERVAL_S)
        try:
            forgotten = await asyncio.to_thread(identity.forget_ended_login_windows, db)
            if forgotten:
                log.info("login_windows_forgotten", rows=forgotten)
        except Exception:
            log.exception("login_limit_sweep_failed")


async def _keep_months_forever(db: Database) -> None:
    """PostgreSQL: the history tables' monthly partitions made months ahead, at start and once
    a day (swapd.store.partitions; a no-op on SQLite)."""
    while True:
        try:
            made = await asyncio.to_thread(partitions.ensure_months_now, db.engine)
            if made:
                log.info("partitions_made", partitions=made)
        except Exception:
            log.exception("partitions_not_made")
        await asyncio.sleep(PARTITIONS_INTERVAL_S)


def create_app(
    db: Database,
    *,
    gateway: Gateway | None = None,
    read_db: Database | None = None,
    listen_url: str | None = None,
) -> FastAPI:
    """``read_db``: where the reads that may lag go (a read replica, swapd.store.replica); the
    primary ``db`` when None. ``listen_url``: where the command dispatcher LISTENs."""
    gw = gateway or Gateway(db)
    reads = db if read_db is None else read_db

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        commands_waiting = asyncio.Event()
        watch = presence.PresenceWatch(db, gw.recorded, gw.close_connection)
        tasks = [
            # Commands and local lists for the stations here, once they booted.
            asyncio.create_task(
                commands.dispatch_forever(db, gw.ready_connections, gw.send_command, commands_waiting),
                name="commands",
            ),
            asyncio.create_task(local_lists.keep_lists_forever(db, gw.ready), name="local_lists"),
            asyncio.create_task(watch.run_forever(), name="presence"),
            asyncio.create_task(_expire_offers_forever(db), name="offer_expiry"),
            asyncio.create_task(_forget_login_windows_forever(db), name="login_windows"),
            asyncio.create_task(_keep_months_forever(db), name="partitions"),
        ]
        if db.dialect == "postgresql":
            # Other processes on the database: a command queued, a station connected there.
            handlers = {
                station_commands.CHANNEL: lambda _payload: commands_waiting.set(),
                stations.CONNECTIONS_CHANNEL: watch.notify,
            }
            listening = listen.listen_forever(db, handlers, url=listen_url)
            tasks.append(asyncio.create_task(listening, name="listen"))
        try:
            # swapd.gateway.protocol reads this to refuse limited clients before the app.
            yield {EARLY_REFUSAL: gw.auth.address_retry_after_s}
        finally:
            for task in tasks:
                task.cancel()
            # Bounded: a loop that outlives its cancellation (as asyncio.wait_for once made the
            # command dispatcher do) is named in the log, and the server stops all the same.
            _, pending = await asyncio.wait(tasks, timeout=SHUTDOWN_TASKS_TIMEOUT_S)
            for task in pending:
                frames = [f"{f.f_code.co_filename}:{f.f_lineno}" for f in task.get_stack(limit=3)]
                log.error("background_task_did_not_stop", task=task.get_name(), at=frames)
            gw.auth.close()

    app = FastAPI(title="swapd", version=__version__, lifespan=lifespan)
    app.state.gateway = gw
    api_router.install(app, db, read_db=reads)
    console.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        def ping() -> None:
            with db.engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))

        try:
            await asyncio.to_thread(ping)
        except sa.exc.SQLAlchemyError as error:
            return JSONResponse(
                {"status": "unavailable", "database": str(error).splitlines()[0]}, status_code=503
            )
        body: dict[str, Any] = {"status": "ok", "version": __version__, "stations": len(gw.sessions)}
        if is_replica(reads):
            # Swaps and money need only the primary: a replica down or behind is reported, and
            # the process stays healthy (its lists and exports fail or lag meanwhile).
            body["replica"] = await _replica_health(reads, gw.metrics)
        return JSONResponse(body)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        if is_replica(reads):
            await _replica_health(reads, gw.metrics)
        return PlainTextResponse(gw.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/ocpp/{station_id}")
    async def ocpp(websocket: WebSocket, station_id: str) -> None:
        await _serve_station(gw, websocket, station_id)

    return app


async def _replica_health(reads: Database, metrics: GatewayMetrics) -> dict[str, Any]:
    """The read replica's lag for /healthz, also set on the gauge ``swapd_replica_lag_seconds``
    (-1 while the replica cannot be read)."""
    try:
        lag_s = await asyncio.wait_for(
            asyncio.to_thread(replica_lag_s, reads), timeout=REPLICA_CHECK_TIMEOUT_S
        )
    except (sa.exc.SQLAlchemyError, TimeoutError) as error:
        metrics.replica_lag.set(-1)
        reason = str(error).splitlines()[0] if str(error) else "no answer in time"
        return {"status": "unavailable", "error": reason}
    metrics.replica_lag.set(-1 if lag_s is None else lag_s)
    if lag_s is None:  # the URL names a primary, not a standby
        return {"status": "not_a_standby"}
    return {"status": "ok", "lag_s": round(lag_s, 3)}


async def _deny(websocket: WebSocket, status: int, reason: str) -> None:
    await _refuse(websocket, Refusal(status, "", reason))


async def _refuse(websocket: WebSocket, refusal: Refusal) -> None:
    response = PlainTextResponse(refusal.text, status_code=refusal.status, headers=refusal.headers())
    await websocket.send_denial_response(response)


async def _serve_station(gw: Gateway, websocket: WebSocket, station_id: str) -> None:
    offered = websocket.scope.get("subprotocols", [])
    subprotocol = next((p for p in SUBPROTOCOLS if p in offered), None)
    client = websocket.client.host if websocket.client is not None else ""
    access = await _admit(gw, websocket, station_id, client)
    if isinstance(access, Refusal):
        await _refuse(websocket, access)
        return
    if not access.enabled:
        await _deny(websocket, 403, f"station {station_id} is disabled")
        return
    if subprotocol is None:
        await _deny(websocket, 400, "subprotocol ocpp2.1 or ocpp2.0.1 required")
        return
    booted = await asyncio.to_thread(stations.is_booted, gw.db, station_id)
    await websocket.accept(subprotocol=subprotocol)
    connection = StarletteConnection(websocket)
    kind = Station21 if subprotocol == "ocpp2.1" else Station201
    session = kind(station_id, connection, gw.db, gw.metrics, booted=booted)
    session.ca_dir = gw.ca_dir
    previous = gw.sessions.get(station_id)
    if previous is not None:
        # A station that reconnects replaces its old socket; only one may speak for it. An old
        # socket in another process is closed by that process (swapd.gateway.presence).
        await previous._connection.close(1000, presence.REPLACED)
    gw.sessions[station_id] = session
    gw.metrics.connected.inc()
    # Recorded for every process (swapd.services.stations.Presence): a command to a station that
    # no process holds is refused at once instead of waiting for an answer that cannot come.
    connection_id = secrets.token_hex(16)
    if await _record_presence(gw, messages.RecordConnected(station_id, connection_id)):
        session.connection_id = connection_id
    log.info("station_connected", station=station_id, subprotocol=subprotocol)
    try:
        await session.start()
    except WebSocketDisconnect:
        pass
    finally:
        if gw.sessions.get(station_id) is session:
            del gw.sessions[station_id]
        gw.metrics.connected.dec()
        await _record_presence(gw, messages.RecordDisconnected(station_id, connection_id))
        log.info("station_disconnected", station=station_id)


async def _admit(
    gw: Gateway, websocket: WebSocket, station_id: str, client: str
) -> StationAccess | Refusal:
    """Profile 3: the client certificate must be the station's; Basic auth is then optional,
    and a station that sends it anyway is checked as in profiles 1 and 2 (a wrong password is
    refused). Without client certificates: Basic auth."""
    authorization = websocket.headers.get("authorization", "")
    if gw.client_certificates:
        access = await client_certs.admit(gw.db, gw.metrics, websocket.scope, station_id, client)
        if isinstance(access, Refusal) or not authorization:
            return access
    return await gw.auth.admit(station_id, client, authorization)


async def _record_presence(
    gw: Gateway, command: messages.RecordConnected | messages.RecordDisconnected
) -> bool:
    """A failed write is logged and the connection goes on: the station's swaps work, and only
    commands to it are refused (as offline) until it connects again. True when written."""
    try:
        await gw.db.call(messages.handle, gw.db, command)
    except Exception:
        log.exception("station_presence_not_recorded", station=command.station_id)
        return False
    return True


def uvicorn_config(
    db: Database,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_ca: str | None = None,
    ca_dir: Path | None = None,
    read_db: Database | None = None,
    listen_url: str | None = None,
) -> uvicorn.Config:
    """How swapd runs under uvicorn: the sans-I/O websockets protocol (reading on while a few
    messages wait, see swapd.gateway.protocol), frames capped, no compression, TLS when given a
    certificate, and logging left to swapd (log_config=None).

    ``client_ca``: the operator CA's certificate (PEM file); TLS then requires every client to
    present a certificate it signed (security profile 3; needs ``certfile``). ``ca_dir``: the
    CA's directory, for signing the CSRs stations send (SignCertificate). ``read_db`` and
    ``listen_url``: see ``create_app``."""
    if client_ca is not None and certfile is None:
        raise ValueError("client certificates (client_ca) need TLS: give certfile and keyfile")
    gateway = Gateway(db, client_certificates=client_ca is not None, ca_dir=ca_dir)
    return uvicorn.Config(
        create_app(db, gateway=gateway, read_db=read_db, listen_url=listen_url),
        host=host,
        port=port,
        http=SwapdHTTPProtocol,
        ws=SwapdWebSocketProtocol,
        ws_max_size=MAX_FRAME_BYTES,
        # OCPP frames are small and stations mostly idle: permessage-deflate would cost ~40 KiB
        # of zlib state per socket (10,000 stations: 400 MiB) for little saved bandwidth.
        ws_per_message_deflate=False,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
        ssl_ca_certs=client_ca,
        ssl_cert_reqs=ssl.CERT_NONE if client_ca is None else ssl.CERT_REQUIRED,
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvloop where it is installed (a dependency except on Windows), else asyncio's loop:
        # uvloop's transports and selector are C, and the event loop's own Python was a fifth
        # of the server's CPU in the swap benchmark (8-20 % more swaps/s with uvloop).
        loop="auto",
    )


def serve(
    db: Database,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    certfile: str | None = None,
    keyfile: str | None = None,
    client_ca: str | None = None,
    ca_dir: Path | None = None,
    writer_process: bool = True,
    json_logs: bool = True,
    sock: socket.socket | None = None,
    read_db: Database | None = None,
    listen_url: str | None = None,
) -> None:
    """Serve until stopped. ``writer_process``: on SQLite, run the stations' service calls in a
    writer process of their own (swapd.store.writer). ``sock``: a socket already bound to
    (host, port), so that a port in use was found before anything started."""
    config = uvicorn_config(
        db,
        host=host,
        port=port,
        certfile=certfile,
        keyfile=keyfile,
        client_ca=client_ca,
        ca_dir=ca_dir,
        read_db=read_db,
        listen_url=listen_url,
    )
    if writer_process:
        db.start_writer_process(json_logs=json_logs, calls_module=writer_calls.__name__)
    settle_heap()
    try:
        uvicorn.Server(config).run(sockets=None if sock is None else [sock])
    finally:
        if read_db is not None and read_db is not db:
            read_db.dispose()
        db.dispose()
