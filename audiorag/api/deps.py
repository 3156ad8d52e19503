"""Dependencies shared by the routers: the caller's tenant scope, and id / catalog checks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, status

from audiorag.api.auth import Tenant
from audiorag.api.parts import Db
from audiorag.api.tenancy import TenantScope, scope_for


def tenant_scope(principal: Tenant, db: Db) -> TenantScope:
    # Read per request: a catalog granted or created a moment ago is visible at once.
    return scope_for(db, principal.tenant)


Scope = Annotated[TenantScope, Depends(tenant_scope)]


def not_found(what: str = "not found") -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=what)


def check_item_id(item_id: str) -> str:
    """Point ids are UUIDs; anything else names no item (404, like any id not yours)."""
    try:
        return str(uuid.UUID(item_id))
    except ValueError:
        raise not_found("no such item") from None


def catalogs_in_scope(scope: TenantScope, names: list[str] | None) -> list[str]:
    """Store names for the requested catalogs (default: all of the tenant's).

    A name the tenant does not own answers 404 exactly like one that does not exist, so nobody
    learns which catalogs other tenants have.
    """
    if not names:
        return list(scope.store_names)
    chosen: list[str] = []
    for name in names:
        catalog = scope.by_name(name)
        if catalog is None:
            raise not_found(f"no catalog {name!r}")
        chosen.append(catalog.store_name)
    return list(dict.fromkeys(chosen))
