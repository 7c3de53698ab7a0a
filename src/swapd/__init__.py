"""swapd: operation server for battery-swap networks."""

__version__ = "0.1.0"
