"""The typed point payload and the seed/scope rules: same stored JSON, one rule per check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from index.analysis import ANALYSIS_VERSION
from index.manifest import Entry, may_seed
from index.payload import ItemPayload, build_payload
from index.prepare import WorkItem
from rag.errors import Refusal
from rag.rules import seed_refusal
from rag.search import NO_CATALOG, SearchRequest, build_filter, catalog_scope, in_catalog_scope

STEM = Entry.model_validate(
    {
        "path": "stems/bass/0001.wav",
        "licence": {
            "id": "LIC-1",
            "holder": "Northside Records",
            "allowed_uses": ["search", "generation-seed"],
            "attribution": "Bass by N.",
        },
        "meta": {
            "instrument": "bass",
            "genre": "house",
            "bpm": 124,
            "key": "Am",
            "tags": ["dark", "warm", "dark"],
        },
    }
)
STEM_ANALYSIS = {
    "duration_s": 7.7419,
    "bpm": 123.9,
    "bpm_method": "loop-length",
    "key": "C major",
    "key_confidence": 0.712,
    "loudness_lufs": -14.2,
    "peak_dbfs": -1.3,
}
MIDI = Entry.model_validate(
    {
        "path": "midi/0002.mid",
        "licence": {"id": "LIC-2", "holder": "Kestrel", "allowed_uses": ["search"]},
        "meta": {"caption": "a busy arp"},
    }
)
MIDI_ANALYSIS = {
    "duration_s": 8.0,
    "bpm": 120.0,
    "key": "D minor",
    "key_source": "key-signature",
    "instruments": [
        {
            "program": 81,
            "is_drum": False,
            "name": "Lead 2 (sawtooth)",
            "family": "lead",
            "notes": 64,
        },
        {"program": 0, "is_drum": True, "name": "Drum kit", "family": "drums", "notes": 12},
    ],
    "note_count": 76,
    "notes_per_second": 9.5,
    "pitch_range": (50, 74),
    "is_drum_only": False,
}
# What the dict-built payload (before ItemPayload) stored for these two items, byte for byte.
STEM_JSON = '{"catalog": "demo", "kind": "stem", "path": "stems/bass/0001.wav", "sha256": "abababababababababababababababababababababababababababababababab", "duration_s": 7.7419, "bpm": 124.0, "key": "A minor", "instrument": "bass", "genre": "house", "tags": ["dark", "warm"], "licence": {"id": "LIC-1", "holder": "Northside Records", "allowed_uses": ["generation-seed", "search"], "attribution": "Bass by N."}, "ground_truth": {"instrument": "bass", "genre": "house", "bpm": 124.0, "key": "A minor", "tags": ["dark", "warm", "dark"]}, "analysis": {"duration_s": 7.7419, "bpm": 123.9, "bpm_method": "loop-length", "key": "C major", "key_confidence": 0.712, "loudness_lufs": -14.2, "peak_dbfs": -1.3}, "analysis_version": 3, "embedder": "clap@123", "entry_hash": "390c4c06596d7439", "caption": "dark warm house bass loop at 124 BPM in A minor"}'  # noqa: E501
MIDI_JSON = '{"catalog": "demo", "kind": "midi", "path": "midi/0002.mid", "sha256": "abababababababababababababababababababababababababababababababab", "duration_s": 8.0, "bpm": 120.0, "key": "D minor", "instrument": "lead", "genre": null, "tags": [], "licence": {"id": "LIC-2", "holder": "Kestrel", "allowed_uses": ["search"], "attribution": ""}, "ground_truth": {"tags": [], "caption": "a busy arp"}, "analysis": {"duration_s": 8.0, "bpm": 120.0, "key": "D minor", "key_source": "key-signature", "instruments": [{"program": 81, "is_drum": false, "name": "Lead 2 (sawtooth)", "family": "lead", "notes": 64}, {"program": 0, "is_drum": true, "name": "Drum kit", "family": "drums", "notes": 12}], "note_count": 76, "notes_per_second": 9.5, "pitch_range": [50, 74], "is_drum_only": false}, "analysis_version": 3, "embedder": "clap@123", "entry_hash": "2e7058d740e3eac3", "caption": "a busy arp"}'  # noqa: E501


def _payload(entry: Entry, kind: str, analysis: dict) -> dict:
    item = WorkItem(entry.path, Path("/x") / entry.path, kind, "ab" * 32, entry)
    return build_payload(item, "demo", analysis, "clap@123", "h").to_store()


@pytest.mark.parametrize(
    ("entry", "kind", "analysis", "stored", "added"),
    [
        # the one field added since: what the path says ("stems/bass/…")
        (STEM, "stem", STEM_ANALYSIS, STEM_JSON, {"named_sound": "bass"}),
        (MIDI, "midi", MIDI_ANALYSIS, MIDI_JSON, {}),
    ],
)
def test_built_payload_is_the_json_stored_before_the_model(entry, kind, analysis, stored, added):
    payload = _payload(entry, kind, analysis)
    expected = json.loads(stored) | added
    expected["entry_hash"] = "h"  # the hash is the indexer's; everything else is the model's
    expected["analysis_version"] = ANALYSIS_VERSION
    assert json.dumps(payload) == json.dumps(expected)


def test_a_stored_payload_reads_and_dumps_back_unchanged():
    stored = json.loads(STEM_JSON)
    stored["analysis"]["one_shot"] = False  # keys a newer indexer adds are kept, in order
    stored["one_shot"] = False
    item = ItemPayload.read(stored)
    assert json.dumps(item.to_store()) == json.dumps(stored)
    assert item.licence.holder == "Northside Records" and item.may_seed
    assert item.analysis.bpm_method == "loop-length"
    midi = ItemPayload.read(json.loads(MIDI_JSON))
    assert midi.analysis.key_source == "key-signature" and not midi.may_seed
    with pytest.raises(ValidationError):
        ItemPayload.read({"catalog": "demo"})


def test_the_seed_licence_rule():
    assert may_seed(["search", "generation-seed"]) and not may_seed(["search", "commercial"])
    seedable, search_only = json.loads(STEM_JSON), json.loads(MIDI_JSON)
    assert seed_refusal("a", seedable, None) is None
    assert seed_refusal("a", seedable, ("demo",)) is None
    refused = seed_refusal("b", search_only, ("demo",))
    assert refused is not None and refused.reason is Refusal.NOT_LICENSED
    assert "0002.mid (b) is not licensed for generation-seed" in str(refused)
    assert "LIC-2 from Kestrel allows search" in str(refused)
    # out of scope reads as missing, even for an unlicensed item: nothing leaks about it
    for payload, scope in ((search_only, ("other",)), (seedable, ()), (None, None)):
        refused = seed_refusal("c", payload, scope)
        assert refused is not None and refused.reason is Refusal.NOT_FOUND
        assert "no item c in this scope" in str(refused)


def test_the_catalog_scope_rule():
    assert catalog_scope(None) is None
    assert catalog_scope(["a", "b"]).values == ("a", "b")
    assert catalog_scope([]).values == (NO_CATALOG,)  # empty scope: matches nothing
    assert in_catalog_scope("a", None) and in_catalog_scope("a", ("a",))
    assert not in_catalog_scope("a", ()) and not in_catalog_scope(None, ("a",))
    flt = build_filter(SearchRequest(catalogs=()))
    assert catalog_scope(()) in flt.must
