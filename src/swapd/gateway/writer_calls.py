"""The service calls the gateway sends to its SQLite writer process, by name (swapd.store.calls).

Every function the gateway passes to ``Database.call`` is here: while a writer process runs,
``Database.call`` refuses any other with a TypeError, and the writer, which imports this module
too, runs nothing else. A name is the wire's; the function behind it is the service's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from swapd.services import catalog, stations, swaps

CALLS: Mapping[str, Callable[..., object]] = MappingProxyType(
    {
        # the station's connection (swapd.gateway.server)
        "record_connected": stations.record_connected,
        "record_disconnected": stations.record_disconnected,
        # the handlers of swapd.gateway.session
        "record_boot": stations.record_boot,
        "seen": stations.seen,
        "set_slot_state": stations.set_slot_state,
        "authorize": swaps.authorize,
        "battery_in": swaps.battery_in,
        "battery_out": swaps.battery_out,
        "battery_out_timeout": swaps.battery_out_timeout,
        "report_soc": catalog.report_soc,
    }
)
