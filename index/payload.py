"""What the index stores with every point: the :class:`ItemPayload` of one catalog item.

One model for the writer (:func:`build_payload`, called by the indexer) and the readers (search,
seeding, provenance, the API), so a field is named and typed once. The stored JSON is the
model's dump, field for field in declaration order — the same bytes the dict-built payloads had,
so stores written before the model existed load unchanged. Readers validate with
:meth:`ItemPayload.read`; extra keys are kept (``extra="allow"``), so a store written by a newer
version still reads.

The JSON Schema and a readable table live in ``docs/schema/`` (``docs/schema/render.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from index.analysis import ANALYSIS_VERSION
from index.manifest import may_seed
from index.names import name_label
from index.prepare import WorkItem


class PayloadLicence(BaseModel):
    """The item's licence as stored: the manifest's licence, uses normalised and sorted."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="Licence id from the catalog's manifest.")
    holder: str = Field(description="Who grants the licence.")
    allowed_uses: list[str] = Field(
        description="Uses the licence grants, sorted: search, generation-seed, commercial, "
        "training, preview."
    )
    attribution: str = Field("", description="Credit line the holder asks for.")


class AudioAnalysisPayload(BaseModel):
    """Estimates from a decoded stem (``index.analysis.AudioAnalysis``)."""

    model_config = ConfigDict(extra="allow")

    duration_s: float
    bpm: float | None = Field(description="Estimated tempo; None when no beat was found.")
    bpm_method: str = Field(description='"loop-length" | "beats" | "periodicity" | "none"')
    key: str | None = Field(description='Estimated key ("A minor"); None when atonal.')
    key_confidence: float
    loudness_lufs: float | None
    peak_dbfs: float
    one_shot: bool = Field(False, description="Shorter than one bar at 240 BPM (a hit).")
    channels: int = Field(1, description="Channel count of the file (any count is indexed).")
    container: str = Field("", description='What the bytes are ("WAV", "FLAC", …), read from them.')
    not_applicable: list[str] = Field(
        default_factory=list, description='Estimates that do not apply (a hit has no "bpm").'
    )


class MidiAnalysisPayload(BaseModel):
    """What a MIDI pattern states or implies (``index.analysis.MidiAnalysis``)."""

    model_config = ConfigDict(extra="allow")

    duration_s: float
    bpm: float
    key: str | None
    key_source: str = Field(description='"key-signature" | "pitch-histogram" | "none"')
    instruments: list[dict[str, Any]] = Field(
        description="One entry per voiced track: program, is_drum, name, family, notes."
    )
    note_count: int
    notes_per_second: float
    pitch_range: tuple[int, int] | None
    is_drum_only: bool
    one_shot: bool = Field(False, description="Shorter than one bar at 240 BPM.")


class ItemPayload(BaseModel):
    """One indexed item: where it is, what it sounds like, and under what licence.

    Top-level ``bpm``, ``key`` and ``instrument`` are the manifest's ground truth where it
    gives them, else the analysis estimates; both sources stay in ``ground_truth`` and
    ``analysis``. Field order is the stored order.
    """

    model_config = ConfigDict(extra="allow")

    catalog: str = Field(description="Catalog name in the store (API uploads: <tenant>/<name>).")
    kind: Literal["stem", "midi"]
    path: str = Field(description="POSIX path relative to the catalog folder.")
    sha256: str = Field(description="SHA-256 of the file bytes; the point id derives from it.")
    duration_s: float
    bpm: float | None = Field(description="Ground truth if given, else estimated.")
    key: str | None = Field(description='Canonical key ("A minor"); truth, else estimate.')
    instrument: str | None = Field(
        description="Instrument family; truth, else (MIDI) the busiest track's family, else "
        "the family the file's name or folders state (index.names)."
    )
    genre: str | None
    tags: list[str] = Field(description="Manifest tags, de-duplicated and sorted.")
    licence: PayloadLicence
    ground_truth: dict[str, Any] = Field(
        default_factory=dict,
        description="The manifest's `meta` for the item, fields it leaves empty omitted.",
    )
    analysis: AudioAnalysisPayload | MidiAnalysisPayload
    analysis_version: int = Field(description="Re-analysed when index.analysis changes it.")
    embedder: str = Field(description="Id of the CLAP model that made the point's vectors.")
    entry_hash: str = Field(description="Hash of the manifest entry: a change refreshes this.")
    caption: str = Field(description="Manifest caption, else one composed from the fields.")
    one_shot: bool = Field(
        False,
        description="A hit (under index.analysis.ONE_SHOT_MAX_SECONDS), not a loop: tempo and key "
        "do not apply. Filter with SearchRequest.one_shot.",
    )
    named_sound: str | None = Field(
        None,
        description='What the file\'s name or folders call it ("kick", "cello"; index.names); '
        "None when they say nothing known or name another family than the item's instrument. "
        "Goes into the composed caption and answers prompts that name it (rag.search).",
    )

    @classmethod
    def read(cls, payload: Mapping[str, Any]) -> ItemPayload:
        """The payload of a stored point, validated (raises ``pydantic.ValidationError``)."""
        return cls.model_validate(dict(payload))

    def to_store(self) -> dict[str, Any]:
        """The dict the store keeps (extra keys last, as read). Fields a stored payload lacks
        (written before they existed) stay absent, so reading and writing back changes nothing."""
        return self.model_dump(exclude_unset=True)

    @property
    def allowed_uses(self) -> list[str]:
        return list(self.licence.allowed_uses)

    @property
    def may_seed(self) -> bool:
        """Whether the licence lets this item seed a take (:func:`index.manifest.may_seed`)."""
        return may_seed(self.licence.allowed_uses)


def caption_from(fields: Mapping[str, Any]) -> str:
    """A plain caption for items whose manifest gives none.

    >>> caption_from({"kind": "stem", "instrument": "bass", "genre": "house", "bpm": 124.0,
    ...               "key": "A minor", "tags": ["dark"]})
    'dark house bass loop at 124 BPM in A minor'
    >>> caption_from({"kind": "stem", "instrument": "drums", "tags": ["hi-hat"], "one_shot": True})
    'hi-hat drums one-shot'
    >>> caption_from({"kind": "stem", "instrument": "strings", "named_sound": "cello",
    ...               "one_shot": True})
    'cello strings one-shot'
    """
    sound = fields.get("named_sound")
    sound = None if sound in (fields.get("instrument"), *fields.get("tags", [])) else sound
    words = [*fields.get("tags", [])[:2], fields.get("genre"), sound, fields.get("instrument")]
    noun = "MIDI pattern" if fields["kind"] == "midi" else "loop"
    if fields.get("one_shot"):
        noun = "one-shot" if fields["kind"] == "stem" else "MIDI hit"
    text = " ".join(w for w in words if w) + f" {noun}"
    if fields.get("bpm"):
        text += f" at {fields['bpm']:.0f} BPM"
    if fields.get("key"):
        text += f" in {fields['key']}"
    return text.strip()


def caption_says_what_it_is(payload: Mapping[str, Any]) -> bool:
    """Whether an item's caption says what the sound is — the owner's own caption, or one
    composed from an instrument, genre, named sound or tags — rather than only what analysis
    measured ("one-shot", "loop at 120 BPM in A minor"), which is no evidence of what it is.

    >>> caption_says_what_it_is({"caption": "one-shot", "tags": []})
    False
    >>> caption_says_what_it_is({"caption": "kick drums one-shot", "instrument": "drums"})
    True
    """
    owner = (payload.get("ground_truth") or {}).get("caption")
    described = any(payload.get(key) for key in ("instrument", "genre", "named_sound", "tags"))
    return bool(owner or described)


def build_payload(
    item: WorkItem, catalog: str, analysis: dict[str, Any], embedder_id: str, entry_hash: str
) -> ItemPayload:
    """The point payload: ground truth where the manifest gives it, estimates otherwise."""
    meta = item.entry.meta
    instrument = meta.instrument
    if instrument is None and item.kind == "midi" and analysis.get("instruments"):
        instrument = max(analysis["instruments"], key=lambda i: i["notes"])["family"]
    named = name_label(item.relative)
    if named is not None and instrument is not None and named.family != instrument:
        named = None  # the manifest or the MIDI says otherwise: the name meant something else
    if instrument is None and named is not None:
        instrument = named.family
    fields: dict[str, Any] = {
        "catalog": catalog,
        "kind": item.kind,
        "path": item.relative,
        "sha256": item.sha256,
        "duration_s": analysis["duration_s"],
        "bpm": meta.bpm if meta.bpm is not None else analysis.get("bpm"),
        "key": meta.key if meta.key is not None else analysis.get("key"),
        "instrument": instrument,
        "genre": meta.genre,
        "tags": sorted(set(meta.tags)),
        "licence": item.entry.licence.model_dump(),
        "ground_truth": meta.model_dump(exclude_none=True),
        "analysis": analysis,
        "analysis_version": ANALYSIS_VERSION,
        "embedder": embedder_id,
        "entry_hash": entry_hash,
    }
    if "one_shot" in analysis:  # analyses before ANALYSIS_VERSION 3 had no such flag
        fields["one_shot"] = analysis["one_shot"]
    if named is not None:
        fields["named_sound"] = named.sound
    # keyword order is free: the model dumps in its declaration order (caption, then one_shot)
    return ItemPayload(**fields, caption=meta.caption or caption_from(fields))
