"""Secrets: station passwords are generated here and stored only as scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

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
