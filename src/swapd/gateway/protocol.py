"""The WebSocket protocol swapd runs under uvicorn: uvicorn's sans-I/O websockets one, reading on
while a station has a few messages waiting.

uvicorn pauses reading a socket after every message it queues for the application and resumes
as soon as the application takes it. For OCPP-J, where a station sends one CALL and waits for its
answer, that is two ``epoll_ctl`` system calls and two selector updates per message for no
back-pressure gained: 7 % of the server's CPU in the swap benchmark (py-spy). Here reading pauses
only once ``PAUSE_AFTER_MESSAGES`` messages wait unread, and resumes when the application has
taken them all, so one socket still buffers at most that many frames of ``ws_max_size``.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

PAUSE_AFTER_MESSAGES = 4


class SwapdWebSocketProtocol(WebSocketsSansIOProtocol):
    def send_receive_event_to_app(self) -> None:
        paused = self.read_paused
        # uvicorn's method queues the message and pauses unless reading is paused already:
        # let it believe so, and decide here.
        self.read_paused = True
        try:
            super().send_receive_event_to_app()
        finally:
            self.read_paused = paused
        if not self.read_paused and self.queue.qsize() >= PAUSE_AFTER_MESSAGES:
            self.read_paused = True
            self.transport.pause_reading()
