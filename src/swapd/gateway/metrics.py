"""Prometheus metrics of the gateway, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    """One set per server; a registry of its own keeps tests and several apps apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge(
            "swapd_connected_stations", "Stations with an open WebSocket", registry=self.registry
        )
        self.messages = Counter(
            "swapd_ocpp_messages", "OCPP calls received, by action", ["action"], registry=self.registry
        )
        self.call_errors = Counter(
            "swapd_ocpp_call_errors", "CALLERRORs sent, by error code", ["code"], registry=self.registry
        )
        self.swaps = Counter(
            "swapd_swaps", "Completed hand-overs (BatteryOut applied)", registry=self.registry
        )
        self.refusals = Counter(
            "swapd_refusals", "Swap refusals, by reason", ["reason"], registry=self.registry
        )
        # Actions are the OCPP requests swapd builds (checked against their schemas): bounded.
        self.commands = Counter(
            "swapd_station_commands",
            "Requests sent to stations, by action and outcome (answered, failed)",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.auth_refusals = Counter(
            "swapd_station_auth_refusals",
            "WebSocket upgrades refused by station auth, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.replica_lag = Gauge(
            "swapd_replica_lag_seconds",
            "How far the read replica's replay is behind the primary (-1: cannot tell)",
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "swapd_decision_seconds",
            "Time to answer Authorize (the swap decision)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
