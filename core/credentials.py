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


def new_id(prefix: str) -> str:
    """Short, URL-safe, lowercase ids like `hh-7f3a9c21d0e4`."""
    return f"{prefix}-{secrets.token_hex(6)}"
