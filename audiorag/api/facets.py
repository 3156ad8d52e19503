"""Facets of a tenant's catalogs (distinct instruments, styles, keys, kinds, licence uses), and
their cache: keyed by the catalogs and a generation counter each upload bumps."""

from __future__ import annotations

import threading
import time
from typing import Any

from audiorag.api.tenancy import ScopedStore

TTL_S = 60.0  # also covers catalogs re-indexed by the CLI or another API process
MAX_ENTRIES = 256

_NOTES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]


def scan_facets(view: ScopedStore) -> dict[str, Any]:
    """One pass over the view's payloads."""
    found: dict[str, set[str]] = {f: set() for f in ("instruments", "genres", "keys", "kinds")}
    uses: set[str] = set()
    items = 0
    for point in view.scroll():
        items += 1
        p = point.payload
        for field, value in (
            ("instruments", p.get("instrument")),
            ("genres", p.get("genre")),
            ("keys", p.get("key")),
            ("kinds", p.get("kind")),
        ):
            if isinstance(value, str) and value:
                found[field].add(value)
        licence = p.get("licence") if isinstance(p.get("licence"), dict) else {}
        uses.update(u for u in licence.get("allowed_uses") or [] if isinstance(u, str))
    result: dict[str, Any] = {k: sorted(v) for k, v in found.items()}
    result["keys"] = sorted(found["keys"], key=_key_order)
    result["uses"] = sorted(uses)
    result["items"] = items
    return result


def _key_order(key: str) -> tuple[int, int, str]:
    """Majors before minors, each by pitch class; anything unparsed last."""
    tonic, _, mode = key.partition(" ")
    if tonic in _NOTES:
        return (0 if mode == "major" else 1, _NOTES.index(tonic), key)
    return (2, 0, key)


class FacetsCache:
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def changed(self, store_name: str) -> None:
        """An upload changed ``store_name``: cached facets over it are stale."""
        with self._lock:
            self._generations[store_name] = self._generations.get(store_name, 0) + 1

    def facets(self, view: ScopedStore) -> dict[str, Any]:
        """The view's facets, from the cache while fresh."""
        names = tuple(sorted(view.names))
        with self._lock:
            generations = tuple(self._generations.get(n, 0) for n in names)
        key = (names, generations, view.count())
        with self._lock:
            cached = self._entries.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_s:
            return cached[1]
        result = scan_facets(view)
        with self._lock:
            if len(self._entries) > MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), result)
        return result
