"""API keys: one key → one tenant. Keys are hashed at rest; the plain key is shown once.

A key reads ``ark_<id>.<secret>``: the id finds the row, the sha256 of the whole key is compared
in constant time. The secret has 256 random bits, so a fast hash is enough (a slow password hash
protects guessable secrets, which these are not).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from audiorag.api.db import Database
from audiorag.api.parts import Db, Signer
from audiorag.api.repos import keys as repo

KEY_PREFIX = "ark_"
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_KEY_PATTERN = re.compile(r"^ark_([0-9a-f]{12})\.([A-Za-z0-9_-]{20,128})$")


class KeyError_(ValueError):
    """A key-management request that cannot be done; the message says why."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    key_id: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(db: Database, tenant: str, name: str = "") -> tuple[str, str]:
    """Make a key for ``tenant``; returns (key id, the plain key — its only appearance)."""
    if not TENANT_PATTERN.match(tenant):
        raise KeyError_(
            "tenant must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or "
            "digit"
        )
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}{key_id}.{secrets.token_urlsafe(32)}"
    repo.insert(db, key_id, tenant, name, _digest(key))
    return key_id, key


def revoke_key(db: Database, key_id: str) -> bool:
    """Revoke a key by id (or by the whole key); False when there is no such live key."""
    match = _KEY_PATTERN.match(key_id)
    if match:
        key_id = match.group(1)
    return repo.revoke(db, key_id)


def list_keys(db: Database) -> list[dict[str, Any]]:
    return repo.all_keys(db)


def verify_key(db: Database, key: str) -> Principal | None:
    match = _KEY_PATTERN.match(key.strip())
    if not match:
        return None
    row = repo.get(db, match.group(1))
    if row is None or row["revoked"] is not None:
        return None
    if not hmac.compare_digest(row["hash"], _digest(key.strip())):
        return None
    return Principal(row["tenant"], match.group(1))


def live_key(db: Database, key_id: str) -> Principal | None:
    """The principal of a live (unrevoked) key by its id: a signed URL is good only while the
    key that asked for it is."""
    row = repo.get(db, key_id)
    if row is None or row["revoked"] is not None:
        return None
    return Principal(row["tenant"], key_id)


# Both schemes are declared so /docs offers them; auto_error is off so a missing key gives our
# 401 with a WWW-Authenticate header rather than FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")


def current_principal(
    db: Db,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
) -> Principal:
    key = bearer.credentials if bearer is not None else header
    principal = verify_key(db, key) if key else None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing, unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Tenant = Annotated[Principal, Depends(current_principal)]


def principal_or_token(
    request: Request,
    db: Db,
    signer: Signer,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header: Annotated[str | None, Depends(_header)],
    token: Annotated[
        str | None,
        Query(
            max_length=200,
            description="A signed URL's token (from `links` in item / job JSON): lets an "
            "`<audio>` or `<img>` element fetch this one path for a few minutes without the key.",
        ),
    ] = None,
) -> Principal:
    """An API key as usual, or — on the audio and spectrogram routes only — a signed token for
    exactly this path, unexpired, issued to a key that is still live."""
    if bearer is not None or header:
        return current_principal(db, bearer, header)
    key_id = signer.verify(token, request.url.path) if token else None
    principal = live_key(db, key_id) if key_id else None
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing API key, or an expired, forged or revoked signed URL"
            if token
            else "missing, unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


TenantOrToken = Annotated[Principal, Depends(principal_or_token)]
