"""Every operator route module under one router, so the application mounts them in one line."""

from __future__ import annotations

from fastapi import APIRouter

from swapd.api import (
    operator_exports,
    operator_money,
    operator_packs,
    operator_plans,
    operator_riders,
    operator_right_sizing,
    operator_station_commands,
    operator_stations,
    operator_swaps,
)

router = APIRouter()
for _module in (
    operator_stations,
    operator_station_commands,
    operator_packs,
    operator_plans,
    operator_riders,
    operator_swaps,
    operator_right_sizing,
    operator_money,
    operator_exports,
):
    router.include_router(_module.router)
