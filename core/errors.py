"""Errors of the domain core.

AnsimError
 ├── WireError        a message that breaks the wire contract (→ dead letter)
 └── ConfigError      a setting or environment that cannot work
"""

from __future__ import annotations


class AnsimError(Exception):
    """Base of every error the core raises on purpose."""


class WireError(AnsimError):
    """A payload or topic that breaks the wire contract; `reason` names the dead-letter kind."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(AnsimError):
    """A configuration that cannot work (missing binary, bad path, bad value)."""
