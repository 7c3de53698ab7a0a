"""The pure domain: packs, stations, riders, plans, metering and the swap decision. No I/O here."""
