"""The garbage collector's settings for long-running swapd processes (the server, its writer)."""

from __future__ import annotations

import gc

# Young-generation size of the cyclic garbage collector (CPython's default: 700). See settle_heap.
GC_YOUNG_OBJECTS = 20_000


def settle_heap() -> None:
    """Keep the garbage collector from stopping a server process for long.

    The imports and the app leave ~200,000 long-lived objects, and CPython's collector walks all
    of them in each full collection. Under swap load, calls in flight outlive the young
    collections (every 700 allocations by default), reach the old generation, and trigger a full
    collection every ~4 s that held the event loop for 115-135 ms (measured with gc.callbacks in
    bench.swaps): the decision p99 at half load went from ~10 ms to 40-70 ms. Frozen objects are
    left out of every collection, and a larger young generation lets a call's objects die young.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_OBJECTS, older, oldest)
