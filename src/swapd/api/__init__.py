"""The HTTP API under /api/v1 for riders and operators, served by ``swapd serve``."""
