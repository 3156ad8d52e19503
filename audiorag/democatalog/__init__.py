"""The synthetic licensed demo catalog: procedurally composed MIDI loops rendered to stems.

``build_demo_catalog(out, count=480, seed=0)`` writes ``stems/``, ``midi/``, ``licences.jsonl``
and ``catalog.json``; ``plan_items`` is the pure plan behind it; ``caption_for`` words a caption
from an item's metadata (fresh wording per ``rng``, for caption augmentation in training).
"""

from audiorag.democatalog.captions import INSTRUMENT_SYNONYMS, STYLE_SYNONYMS, caption_for
from audiorag.democatalog.catalog import (
    FAMILIES,
    MOODS,
    DemoCatalogSummary,
    build_demo_catalog,
    plan_items,
)
from audiorag.democatalog.compose import ItemSpec, Key, compose_item

__all__ = [
    "FAMILIES",
    "INSTRUMENT_SYNONYMS",
    "MOODS",
    "STYLE_SYNONYMS",
    "DemoCatalogSummary",
    "ItemSpec",
    "Key",
    "build_demo_catalog",
    "caption_for",
    "compose_item",
    "plan_items",
]
