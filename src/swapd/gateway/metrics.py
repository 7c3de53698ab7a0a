"""Prometheus metrics of the gateway, exposed at /metrics.

Under ``swapd serve --workers N`` (swapd.gateway.workers) every worker writes its values to
files in the directory named by ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess
mode), and /metrics on any worker sums them over all: counters and histograms over every worker
of the run, the connected stations over the live ones.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


class GatewayMetrics:
    """One set per server; a registry of its own keeps tests and several apps apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connected = Gauge(
            "swapd_connected_stations",
            "Stations with an open WebSocket",
            registry=self.registry,
            multiprocess_mode="livesum",  # the workers alive now; ignored in one process
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

    def exposition(self) -> bytes:
        """The text /metrics serves: this process's metrics, or, in multiprocess mode, every
        worker's summed (read from their files; this process's are among them)."""
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if not directory:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
