"""Dependencies as typed aliases: the database, the broker admin, the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.broker.dynsec import DynsecAdmin
from core.broker.tls import TlsFiles
from core.models import Role
from core.settings import Settings
from core.storage.port import Store
from core.storage.tokens import Principal, find_principal

_bearer = HTTPBearer(auto_error=False, description="an operator or resident token")


def get_db(request: Request) -> Store:
    db: Store = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_admin(request: Request) -> DynsecAdmin:
    admin: DynsecAdmin | None = await request.app.state.broker_admin()
    if admin is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the MQTT broker is unreachable")
    return admin


async def get_admin_or_none(request: Request) -> DynsecAdmin | None:
    """The broker admin, or None while the broker is unreachable (for routes that commit
    their database change first and call the broker after)."""
    admin: DynsecAdmin | None = await request.app.state.broker_admin()
    return admin


DbDep = Annotated[Store, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_tls(request: Request) -> TlsFiles:
    tls: TlsFiles = request.app.state.tls
    return tls


TlsDep = Annotated[TlsFiles, Depends(get_tls)]
AdminDep = Annotated[DynsecAdmin, Depends(get_admin)]
MaybeAdminDep = Annotated[DynsecAdmin | None, Depends(get_admin_or_none)]


async def get_principal(
    db: DbDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await find_principal(db.reader, creds.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def require_operator(principal: CurrentPrincipal) -> Principal:
    if principal.role is not Role.OPERATOR:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "operator role required")
    return principal


Operator = Annotated[Principal, Depends(require_operator)]


def ensure_household_access(principal: Principal, household_id: str) -> None:
    if principal.role is Role.OPERATOR:
        return
    if principal.household_id != household_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this token belongs to another household")
