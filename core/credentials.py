"""Secrets: API tokens, sensor passwords and webhook secrets.

Tokens and passwords are high-entropy random strings, so a plain SHA-256 is a sound
one-way hash for storing them (no dictionary to attack); only hashes are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "ansim_"  # noqa: S105 - a prefix, not a secret


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_webhook_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


# A short PIN (4–12 digits) must not be brute-forced from a copy of the database: a slow,
# memory-hard hash with a random salt (stdlib scrypt), not the fast SHA-256 of tokens.
_PIN_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=32, **_PIN_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt_hex), dklen=32, **_PIN_SCRYPT)
    return hmac.compare_digest(digest.hex(), digest_hex)


def new_id(prefix: str) -> str:
    """Short, URL-safe, lowercase ids like `hh-7f3a9c21d0e4`."""
    return f"{prefix}-{secrets.token_hex(6)}"
