"""The seed rule every path applies: may this item seed a take for a request in this scope?

The orchestrator applies it to pinned items when it renders; the HTTP API applies it when a
pin is submitted, so the client hears at once (404 for an item out of scope, 422 for one whose
licence does not allow seeding). Retrieved items are held to the same rule by the store filter
(:func:`rag.search.catalog_scope` and ``licence.allowed_uses``) and checked again per hit with
:func:`index.manifest.may_seed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from index.manifest import SEED_USE
from index.payload import ItemPayload
from rag.errors import GenerationError, Refusal
from rag.search import in_catalog_scope


def seed_refusal(
    item_id: str, payload: Mapping[str, Any] | None, catalogs: Sequence[str] | None
) -> GenerationError | None:
    """Why the stored item ``item_id`` (``payload``; None when it is not in the store) may not
    seed a take limited to ``catalogs`` (None: every catalog) — or None when it may.

    The reason is :attr:`Refusal.NOT_FOUND` or :attr:`Refusal.NOT_LICENSED`; an item outside
    the scope reads as missing, so a licence message never tells about another tenant's items.
    """
    if payload is None or not in_catalog_scope(payload.get("catalog"), catalogs):
        return GenerationError(f"no item {item_id} in this scope (not found)", Refusal.NOT_FOUND)
    item = ItemPayload.read(payload)
    if item.may_seed:
        return None
    name = item.path.rsplit("/", 1)[-1] or item_id
    licence = item.licence
    return GenerationError(
        f"{name} ({item_id}) is not licensed for {SEED_USE}: its licence {licence.id} from "
        f"{licence.holder or 'its holder'} allows {', '.join(item.allowed_uses) or 'nothing'}; "
        f"pick an item licensed for {SEED_USE}",
        Refusal.NOT_LICENSED,
    )
