"""``swapd sim``: simulated stations and riders that drive a real swapd server over real WebSockets.

Stations are OCPP 2.1 clients whose slots charge packs along a simple curve; riders drain their
packs on an accelerated clock and swap them with the battery as key, an RFID card or the app. At
the end the simulator compares what it saw with what the server wrote.
"""
