"""Integer ids and cursors from paths, queries and headers: one type, one place.

Every id the API takes as a number is a row id or a keyset position in SQLite, whose
integers are signed 64-bit. A value outside `minimum..2**63-1`, a sign, a non-digit or
more than 19 digits is the caller's mistake: 400 with the reason, in the shape every
other error has (`{"detail": ...}`), never an OverflowError from the driver (500).

`id_query`/`id_path`/`id_header` build the FastAPI dependencies; `parse_id` is the rule.
Opaque cursors (base64 of a few values) go through `encode_cursor`/`decode_cursor`,
which apply the same range to each number they carry.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import Depends, Header, HTTPException, Path, Query, status

SQLITE_INT_MAX = 2**63 - 1
SQLITE_INT_MIN = -(2**63)
_MAX_DIGITS = len(str(SQLITE_INT_MAX))  # 19
_MAX_CURSOR_CHARS = 200


def _bad(name: str, reason: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, f"invalid {name}: {reason}")


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= 32 else raw[:32] + "…")


def parse_id(raw: str, name: str, minimum: int = 1) -> int:
    """`raw` as an integer in `minimum..2**63-1`, or HTTPException 400 naming `name`."""
    want = f"an integer from {minimum} to {SQLITE_INT_MAX}"
    if not raw or not raw.isascii() or not raw.isdigit():
        raise _bad(name, f"{_shown(raw)} is not {want}")
    if len(raw) > _MAX_DIGITS or int(raw) > SQLITE_INT_MAX:
        raise _bad(name, f"{_shown(raw)} is larger than {SQLITE_INT_MAX}")
    value = int(raw)
    if value < minimum:
        raise _bad(name, f"{value} is not {want}")
    return value


def id_query(name: str = "cursor", *, minimum: int = 1, description: str = "") -> Any:
    """`Annotated[int | None, id_query("cursor")]`: an optional integer query parameter."""
    text = f"{description} (an integer {minimum}..2^63-1)".strip()

    def dependency(
        raw: str | None = Query(None, alias=name, description=text),
    ) -> int | None:
        return None if raw is None else parse_id(raw, name, minimum)

    return Depends(dependency)


def id_path(name: str, *, minimum: int = 1, description: str = "") -> Any:
    """`Annotated[int, id_path("request_id")]`: an integer path parameter."""
    text = f"{description} (an integer {minimum}..2^63-1)".strip()

    def dependency(raw: str = Path(alias=name, description=text)) -> int:
        return parse_id(raw, name, minimum)

    return Depends(dependency)


def id_header(name: str, *, minimum: int = 0, description: str = "") -> Any:
    """`Annotated[int | None, id_header("Last-Event-ID")]`: an optional integer header."""
    text = f"{description} (an integer {minimum}..2^63-1)".strip()

    def dependency(
        raw: str | None = Header(None, alias=name, description=text),
    ) -> int | None:
        return None if raw is None else parse_id(raw, name, minimum)

    return Depends(dependency)


def encode_cursor(*parts: int | str) -> str:
    """An opaque keyset cursor: the parts joined by ':' in unpadded url-safe base64."""
    raw = ":".join(str(p) for p in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """The `parts` texts of a cursor made by `encode_cursor` (the last may hold ':'), or
    400 `invalid cursor`."""
    if len(cursor) > _MAX_CURSOR_CHARS:
        raise _bad("cursor", f"longer than {_MAX_CURSOR_CHARS} characters")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad("cursor", "not a cursor this API made") from None
    values = raw.split(":", parts - 1)
    if len(values) != parts:
        raise _bad("cursor", "not a cursor this API made")
    return values


def cursor_int(text: str, minimum: int = SQLITE_INT_MIN) -> int:
    """One number inside a cursor: a signed 64-bit integer (`minimum` and up), else 400."""
    body = text[1:] if text.startswith("-") else text
    if not body or not body.isascii() or not body.isdigit() or len(body) > _MAX_DIGITS:
        raise _bad("cursor", "not a cursor this API made")
    value = int(text)
    if not max(minimum, SQLITE_INT_MIN) <= value <= SQLITE_INT_MAX:
        raise _bad("cursor", "not a cursor this API made")
    return value
