"""The station gateway: OCPP 2.1 (and 2.0.1) over WebSocket, one handler per action."""
