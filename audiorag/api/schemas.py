"""Request and response models: every route takes and returns one of these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Use = Literal["search", "generation-seed", "commercial", "training", "preview"]
Format = Literal["wav", "flac"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]

_Name = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Strict(BaseModel):
    # Unknown fields are refused: a misspelt filter must not silently widen a search.
    model_config = ConfigDict(extra="forbid")


# --- search -------------------------------------------------------------------------------------


class SearchBody(Strict):
    text: str | None = Field(None, max_length=1000, description="What you are looking for.")
    catalogs: list[str] | None = Field(
        None, max_length=64, description="Your catalogs to search (default: all of yours)."
    )
    kind: Literal["stem", "midi"] | None = None
    instrument: str | None = Field(None, max_length=64)
    genre: str | None = Field(None, max_length=64)
    bpm: float | None = Field(None, gt=0, le=1000)
    bpm_tolerance: float = Field(4.0, ge=0, le=500)
    half_double: bool = Field(True, description="Also match half- and double-time.")
    key: str | None = Field(None, max_length=32, description='e.g. "A minor", "F#m"')
    compatible_key: bool = Field(False, description="Also match the relative major/minor.")
    uses: list[Use] = Field(
        default_factory=list, max_length=5, description="Licence uses every hit must allow."
    )
    limit: int = Field(10, ge=1, le=100)


class SearchHitOut(BaseModel):
    id: str
    catalog: str
    score: float = Field(description="Fused rank score in (0, 1]; 1 = first for every query.")
    scores: dict[str, float] = Field(description="Cosine per query.")
    payload: dict[str, Any]
    links: dict[str, str] = Field(
        default_factory=dict,
        description="`audio`: a signed URL of the preview, usable without the key for ~10 min.",
    )


class SearchResponse(BaseModel):
    hits: list[SearchHitOut]


class ItemOut(BaseModel):
    id: str
    catalog: str
    kind: str | None = None
    payload: dict[str, Any]
    audio_url: str
    links: dict[str, str] = Field(
        default_factory=dict,
        description="`audio` (needs the key) and `audio_signed` (a signed URL, ~10 min).",
    )


# --- catalogs and uploads -----------------------------------------------------------------------


class CatalogOut(BaseModel):
    name: str
    items: int
    writable: bool = Field(description="False for catalogs granted read-only by an operator.")


class CatalogList(BaseModel):
    catalogs: list[CatalogOut]


class UploadedFile(BaseModel):
    filename: str = Field(description="The name as sent (made printable).")
    stored_as: str | None = Field(None, description="Safe name it is kept under.")
    status: Literal["indexed", "updated", "unchanged", "rejected", "failed"]
    id: str | None = Field(None, description="Item id when it is in the index.")
    reason: str | None = Field(None, description="Why it is not in the index.")


class UploadResponse(BaseModel):
    catalog: str
    files: list[UploadedFile]
    counts: dict[str, int]


# --- generation ---------------------------------------------------------------------------------


class GenerationSettings(Strict):
    """Every generation knob; in a session's defaults all are optional."""

    prompt: str | None = Field(None, min_length=1, max_length=2000)
    negative_prompt: str | None = Field(None, max_length=2000)
    duration_s: float | None = Field(None, gt=0, le=600)
    bpm: float | None = Field(None, gt=0, le=1000)
    key: str | None = Field(None, max_length=32)
    top_k: int | None = Field(None, ge=0, le=32, description="Catalog hits used as seeds.")
    strength: float | None = Field(
        None, ge=0, le=1, description="0 keeps the init audio, 1 ignores it."
    )
    steps: int | None = Field(None, ge=1, le=1000)
    cfg: float | None = Field(None, ge=0, le=50)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    retrieval: bool | None = None
    instrument: str | None = Field(None, max_length=64)
    genre: str | None = Field(None, max_length=64)
    inpaint_from_s: float | None = Field(None, ge=0)
    inpaint_to_s: float | None = Field(None, ge=0)
    formats: list[Format] | None = Field(None, min_length=1, max_length=2)
    roles: list[Annotated[str, Field(min_length=1, max_length=32)]] | None = Field(
        None,
        max_length=16,
        description="Parts to seed, one catalog item each, e.g. drums, bass, pad (synonyms "
        "such as beat, 808, chords work); default: the parts the prompt names, else drums, "
        "bass and a harmonic part.",
    )


class GenerateBody(GenerationSettings):
    prompt: str = Field(min_length=1, max_length=2000)  # type: ignore[assignment]
    catalogs: list[str] | None = Field(
        None, max_length=64, description="Your catalogs to draw seeds from (default: all)."
    )
    pinned: list[str] = Field(
        default_factory=list, max_length=32, description="Item ids that always seed."
    )


class Progress(BaseModel):
    done: int
    total: int
    fraction: float


class JobOut(BaseModel):
    id: str
    status: JobStatus
    progress: Progress
    session_id: str | None = None
    take_id: str | None = None
    error: str | None = None
    created: float
    started: float | None = None
    finished: float | None = None
    links: dict[str, str] = Field(
        description="`audio_<fmt>`, `spectrogram`, `manifest` (need the key); `signed_audio_<fmt>` "
        "and `signed_spectrogram` are signed URLs an `<audio>` / `<img>` can use for ~10 min."
    )


# --- sessions -----------------------------------------------------------------------------------


class SessionCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    catalogs: list[str] = Field(
        default_factory=list, max_length=64, description="Scope; empty = all your catalogs."
    )
    pins: list[str] = Field(default_factory=list, max_length=32)
    defaults: GenerationSettings = Field(default_factory=GenerationSettings)


class SessionOut(BaseModel):
    id: str
    name: str
    catalogs: list[str]
    pins: list[str]
    defaults: dict[str, Any]
    created: float
    takes: int


class SessionList(BaseModel):
    sessions: list[SessionOut]


class SessionGenerateBody(GenerationSettings):
    """Overrides of the session's defaults for this take."""


class RerunBody(Strict):
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    strength: float | None = Field(None, ge=0, le=1)


class InpaintBody(Strict):
    """Regenerate [from_s, to_s) of a take's own audio; the rest is kept."""

    from_s: float = Field(ge=0, le=600)
    to_s: float = Field(gt=0, le=600)
    prompt: str | None = Field(
        None, min_length=1, max_length=2000, description="Default: the take's prompt."
    )
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    strength: float | None = Field(None, ge=0, le=1)


class InpaintRange(BaseModel):
    from_s: float
    to_s: float


class TakeOut(BaseModel):
    job: JobOut
    settings: dict[str, Any]
    parent_take: str | None = None
    origin: Literal["rerun", "inpaint"] | None = Field(
        None,
        description="How this take came from parent_take: a re-run (new seed or strength) or an "
        "in-paint of a range of it. None: a take of its own.",
    )
    inpaint: InpaintRange | None = Field(
        None,
        description="Set when this take in-paints a range: of its parent (origin inpaint) or, "
        "for a re-run of an in-painted take, the same range again.",
    )
    manifest: dict[str, Any] | None = None


class TakeList(BaseModel):
    takes: list[TakeOut]


# --- the caller, facets, watermarks -------------------------------------------------------------


class MeCatalog(BaseModel):
    name: str
    writable: bool


class MeOut(BaseModel):
    tenant: str
    key_id: str
    catalogs: list[MeCatalog]


class FacetsOut(BaseModel):
    """Distinct values across the caller's catalogs, each sorted."""

    instruments: list[str]
    genres: list[str]
    keys: list[str]
    kinds: list[str]
    uses: list[str]
    items: int


class SeedSummary(BaseModel):
    id: str | None = None
    path: str | None = None
    catalog: str | None = None
    licence_id: str | None = None
    holder: str | None = None
    allowed_uses: list[str] = Field(default_factory=list)
    attribution: str | None = None


class TakeSummary(BaseModel):
    take_id: str | None = None
    job_id: str
    session_id: str | None = None
    created_at: str | None = None
    prompt: str | None = None
    model: str | None = None
    seeds: list[SeedSummary]


class WatermarkOut(BaseModel):
    scheme: str
    present: bool
    confidence: float
    payload: str | None = Field(None, description="The 32-bit payload as 8 hex digits.")
    details: dict[str, Any]
    origin: Literal["yours", "this-deployment", "unknown"] | None = Field(
        None,
        description="For a marked file: `yours` (a take one of your jobs made: see `take`), "
        "`this-deployment` (marked here, not by you: no details), `unknown` (a payload this "
        "deployment has no record of). Null when no mark was found.",
    )
    message: str
    take: TakeSummary | None = None


# --- health -------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    store: bool
    embedder: bool
    generator: bool
    detail: str | None = None


class Problem(BaseModel):
    detail: str


CATALOG_NAME = _Name
