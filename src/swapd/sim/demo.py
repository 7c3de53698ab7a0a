"""``swapd demo``: a believable network in one command, and the simulator keeping it busy.

A fresh SQLite file is seeded with the simulator's network (20 stations of 12 slots in Seoul,
with names and coordinates, about 400 packs, 200 riders on energy and delivery plans), two staff
accounts with new passwords, then the server starts on the given port and the simulated stations
and riders swap against it over real WebSockets, on a clock 60 times faster than the wall
clock, until Ctrl-C. The console shows it all live at ``/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import signal
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swapd.services import back_office, identity
from swapd.services.identity import Role
from swapd.sim import network as net
from swapd.sim.config import SimConfig
from swapd.sim.embedded import embedded_server
from swapd.sim.runner import play
from swapd.sim.stats import Snapshot, Stats
from swapd.store.database import Database
from swapd.store.engine import make_engine

DEMO_HOURS = 24.0 * 31  # the longest a simulation runs: at 60x, 12 real days; Ctrl-C ends it sooner
ADMIN_EMAIL = "admin@demo.swapd.example"
OPERATOR_EMAIL = "operator@demo.swapd.example"
# One Ctrl-C in a terminal under `uv run` arrives twice: the terminal signals the whole process
# group and uv forwards its own copy. Signals this close after the first are that one press;
# a later one is a second press and stops the demo without waiting for the stations to close.
REPEATED_SIGNAL_S = 2.0

# Where the demo stations stand: Seoul's busy corners (name, latitude, longitude).
PLACES: tuple[tuple[str, float, float], ...] = (
    ("Gangnam Station Exit 10", 37.4979, 127.0276),
    ("Yeoksam Tower", 37.5006, 127.0364),
    ("Seolleung Park", 37.5045, 127.0490),
    ("COEX North Gate", 37.5125, 127.0590),
    ("Jamsil Lotte", 37.5133, 127.1001),
    ("Seongsu Cafe Street", 37.5446, 127.0557),
    ("Konkuk University", 37.5404, 127.0693),
    ("Wangsimni Market", 37.5612, 127.0371),
    ("Dongdaemun Plaza", 37.5665, 127.0092),
    ("Jongno 3-ga", 37.5704, 126.9920),
    ("Gwanghwamun Square", 37.5725, 126.9769),
    ("City Hall", 37.5657, 126.9769),
    ("Seoul Station West", 37.5547, 126.9706),
    ("Myeongdong", 37.5636, 126.9827),
    ("Itaewon", 37.5345, 126.9946),
    ("Yongsan Electronics", 37.5298, 126.9648),
    ("Yeouido IFC", 37.5251, 126.9255),
    ("Hongdae Entrance", 37.5572, 126.9245),
    ("Sinchon", 37.5551, 126.9368),
    ("Mapo Bridge North", 37.5447, 126.9468),
)


@dataclass(frozen=True, slots=True)
class Ready:
    """What the demo prints once it runs."""

    console_url: str
    logins: tuple[tuple[str, str, str], ...]  # (role, email, password)
    stations: int
    riders: int
    packs: int
    database: Path


def _seed(
    db: Database, config: SimConfig, seed: int
) -> tuple[net.Network, tuple[tuple[str, str, str], ...]]:
    network = net.build(db, config, random.Random(seed))
    for spec, (name, lat, lon) in zip(network.stations, PLACES, strict=False):
        edit = back_office.StationEdit(
            name=name, lat_microdeg=round(lat * 1_000_000), lon_microdeg=round(lon * 1_000_000)
        )
        back_office.edit_station(db, "swapd-demo", spec.id, edit, "demo network")
    logins = []
    for role, email in ((Role.ADMIN, ADMIN_EMAIL), (Role.OPERATOR, OPERATOR_EMAIL)):
        password = secrets.token_urlsafe(9)
        identity.add_staff(db, email, password, role)
        logins.append((role.value, email, password))
    return network, tuple(logins)


def fresh_database(path: Path) -> str:
    """A new, empty SQLite file at ``path`` (an earlier demo's is replaced)."""
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    return f"sqlite:///{path}"


class CtrlC:
    """SIGINT while the demo runs: the first cancels the simulation so that it closes its sockets
    and the summary is printed; copies within REPEATED_SIGNAL_S of it are the same press and are
    ignored, through the whole shutdown; a later one (a second press) raises KeyboardInterrupt.
    Before the simulation starts, the first one raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self._first_s: float | None = None
        self._task: asyncio.Future[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: Any = None

    def __enter__(self) -> CtrlC:
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def __exit__(self, *_: object) -> None:
        signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        now_s = time.monotonic()
        if self._first_s is not None:
            if now_s - self._first_s > REPEATED_SIGNAL_S:
                raise KeyboardInterrupt
            return
        self._first_s = now_s
        if self._loop is None or self._task is None:
            raise KeyboardInterrupt
        self._loop.call_soon_threadsafe(self._task.cancel)

    async def run(self, work: Coroutine[Any, Any, Any]) -> None:
        """Await ``work`` until it ends or the first SIGINT cancels it."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.ensure_future(work)
        if self._first_s is not None:
            self._task.cancel()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._loop = self._task = None


def run_demo(
    path: Path,
    *,
    port: int,
    speed: float,
    seed: int,
    on_ready: Callable[[Ready], None],
    on_progress: Callable[[Snapshot], None],
) -> Stats:
    """Seed, serve and simulate until Ctrl-C (see CtrlC); returns what was counted."""
    config = SimConfig(stations=len(PLACES), hours=DEMO_HOURS, speed=speed, seed=seed, grace_s=5.0)
    config.check()
    url = fresh_database(path)
    stats = Stats()
    with CtrlC() as ctrl_c, contextlib.ExitStack() as cleanup:
        db = Database.open(url)
        cleanup.callback(db.dispose)
        network, logins = _seed(db, config, seed)
        server_db = Database(make_engine(url))  # the server's own engine, as `swapd serve` has
        cleanup.callback(server_db.dispose)
        ws_url = cleanup.enter_context(embedded_server(server_db, port=port))
        http_url = ws_url.replace("ws://", "http://", 1)
        packs = sum(1 for s in network.stations for p in s.slots if p)
        packs += sum(len(r.packs) for r in network.riders)
        riders, stations = len(network.riders), len(network.stations)
        on_ready(Ready(f"{http_url}/", logins, stations, riders, packs, path))
        asyncio.run(ctrl_c.run(play(config, network, ws_url, db, stats, on_progress)))
    return stats
