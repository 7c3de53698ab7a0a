"""How ``swapd serve`` runs its process: it settles its heap before serving (what exists then is
left out of every garbage collection, and the young generation is large enough for a call's
objects to die in it), on uvloop."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from swapd.gateway.server import uvicorn_config
from swapd.heap import GC_YOUNG_OBJECTS, settle_heap
from swapd.store.database import Database


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_heap_freezes_what_exists_and_widens_the_young_generation(restored_gc: None) -> None:
    _, older, oldest = gc.get_threshold()
    survivor = [object() for _ in range(100)]  # a container the collector tracks
    settle_heap()
    assert gc.get_freeze_count() > len(survivor)
    assert not any(o is survivor for o in gc.get_objects())  # frozen: no longer collected
    assert gc.get_threshold() == (GC_YOUNG_OBJECTS, older, oldest)
    assert GC_YOUNG_OBJECTS > 700  # CPython's default, which promoted calls in flight


def test_serve_runs_on_uvloop(db: Database) -> None:
    import uvloop

    factory = uvicorn_config(db).get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
