"""Secrets: station and user passwords are generated here and stored only as scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# scrypt parameters (RFC 7914): N=2**14, r=8, p=1 costs ~16 MiB and ~40 ms per check; stations
# authenticate once per connection, so this is cheap for us and expensive for a guesser.
_N, _R, _P = 2**14, 8, 1
_PREFIX = "scrypt"


def generate_password() -> str:
    """32 URL-safe characters: inside OCPP's 16-64 and printable on any station keypad."""
    return secrets.token_urlsafe(24)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(
        [
            _PREFIX,
            str(_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def verify_password(password: str, stored: str) -> bool:
    try:
        prefix, n, r, p, salt_b64, digest_b64 = stored.split("$")
        if prefix != _PREFIX:
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


class Busy(Exception):
    """More callers want a password hashed or checked than this process lets in at once."""


class PasswordGate:
    """Bounds the scrypt work of one process.

    At most ``running`` hashes run at once (each holds ~16 MiB and a core for ~40 ms), and at
    most ``admitted`` callers are inside ``admit()`` at all: hashing, waiting their turn, or on
    their way through the database. One more is refused at once (``Busy``) rather than parked on
    yet another thread, so that a flood of logins cannot take every thread of the HTTP server's
    pool (40 by default) away from the other routes.
    """

    def __init__(self, *, running: int, admitted: int) -> None:
        if not 1 <= running <= admitted:
            raise ValueError(f"need 1 <= running <= admitted, got {running} and {admitted}")
        self.admitted = admitted
        self._running = threading.BoundedSemaphore(running)
        self._lock = threading.Lock()
        self._inside = 0

    @contextmanager
    def admit(self) -> Iterator[None]:
        with self._lock:
            if self._inside >= self.admitted:
                raise Busy(f"{self._inside} password checks under way already")
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1

    def hash(self, password: str) -> str:
        with self._running:
            return hash_password(password)

    def verify(self, password: str, stored: str) -> bool:
        with self._running:
            return verify_password(password, stored)
