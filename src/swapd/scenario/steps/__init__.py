"""The steps a scenario can take, each parsed from its TOML table and run through the services.

A step is validated completely when the file is loaded (ids, amounts, percentages, readings), so a
malformed file fails before anything is written. What only the database can decide (an unknown
rider, an occupied slot) is the services' to refuse when the step runs.
"""

from __future__ import annotations

from swapd.scenario.steps.base import (
    MAX_PACKS_PER_EVENT,
    Action,
    Context,
    Done,
    percent,
    quantity,
)
from swapd.scenario.steps.clock import Advance, At
from swapd.scenario.steps.money import Adjust, CloseCycle, Refund, Subscribe, TopUp
from swapd.scenario.steps.network import (
    AddPackModel,
    AddPlan,
    AddRider,
    AddStation,
    AddToken,
    RegisterPack,
    SetPackPolicy,
)
from swapd.scenario.steps.swaps import (
    OFFER_RESULT_KEYS,
    PACK_RESULT_KEYS,
    Authorize,
    BatteryEvent,
    BatteryIn,
    BatteryOut,
    Timeout,
)

__all__ = [
    "ACTIONS",
    "MAX_PACKS_PER_EVENT",
    "OFFER_RESULT_KEYS",
    "PACK_RESULT_KEYS",
    "Action",
    "AddPackModel",
    "AddPlan",
    "AddRider",
    "AddStation",
    "AddToken",
    "Adjust",
    "Advance",
    "At",
    "Authorize",
    "BatteryEvent",
    "BatteryIn",
    "BatteryOut",
    "CloseCycle",
    "Context",
    "Done",
    "Refund",
    "RegisterPack",
    "SetPackPolicy",
    "Subscribe",
    "Timeout",
    "TopUp",
    "percent",
    "quantity",
]

ACTIONS: dict[str, type[Action]] = {
    cls.kind: cls
    for cls in (
        AddPackModel,
        AddPlan,
        AddStation,
        SetPackPolicy,
        RegisterPack,
        AddRider,
        AddToken,
        TopUp,
        Subscribe,
        CloseCycle,
        Refund,
        Adjust,
        At,
        Advance,
        Authorize,
        BatteryIn,
        BatteryOut,
        Timeout,
    )
}
