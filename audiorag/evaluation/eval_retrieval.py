"""Retrieval quality of the configured CLAP on a held-out catalog: the five measures of issue 3.

The catalog's stems are indexed into a fresh embedded store with the normal :class:`Indexer`,
then each measure queries the model the way search does, with the catalog's ground truth as the
answer key:

=========================  ====================================================================
text → family, P@10        "<instrument>" queries in several phrasings and synonyms, ranked
                           against the stems' audio vectors; share of the top 10 of that family
text → drum style, P@10    queries naming a drum style, among drum loops only; share of the top
                           10 in that style
example → family, P@5      every stem as a query against all other stems' audio vectors
zero-shot family accuracy  each stem labelled with the family whose prompts (averaged) its audio
                           is closest to
unrelated captions cosine  mean cosine between the text vectors of captions of items that share
                           neither family nor style (a collapsed text tower scores near 1)
=========================  ====================================================================

Text measures rank audio vectors only (CLAP's cross-modal match): the product's fused search also
ranks the catalog's own captions, which names the family outright, so it is reported beside them
(``fused_search``) but never as the measure.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audiorag.democatalog.captions import INSTRUMENT_SYNONYMS, STYLE_SYNONYMS, fix_articles
from index.clap import ClapEmbedder
from index.ingest import Indexer, Progress, SilentProgress, kind_of
from index.manifest import Manifest, find_manifest, load_manifest
from index.store import Filter, Match, Point, VectorStore, open_store
from index.timbre import shipped_model
from rag.search import SearchRequest, search, text_timbre

CATALOG = "heldout"

# name → (target, higher is better)
TARGETS: dict[str, tuple[float, bool]] = {
    "text_family_p10": (0.9, True),
    "text_drum_style_p10": (0.7, True),
    "example_family_p5": (0.9, True),
    "zero_shot_family_accuracy": (0.85, True),
    "unrelated_caption_cosine": (0.8, False),
}
LABELS: dict[str, str] = {
    "text_family_p10": "text query → instrument family, precision@10",
    "text_drum_style_p10": "text query → drum style (drum loops), precision@10",
    "example_family_p5": "query by example → same family, precision@5",
    "zero_shot_family_accuracy": "zero-shot instrument-family accuracy",
    "unrelated_caption_cosine": "mean cosine, unrelated captions (≤)",
}

# Query phrasings: none of them is a template of the training captions.
FAMILY_QUERIES: tuple[str, ...] = (
    "{instrument}",
    "{instrument} sample",
    "a loop with {instrument}",
    "looking for {instrument}",
    "{instrument} for my track",
    "a clean {instrument} stem",
)
STYLE_QUERIES: tuple[str, ...] = (
    "{style} drums",
    "a {style} beat",
    "{style} drum loop",
    "drum groove for {style}",
    "{style} percussion",
)
ZERO_SHOT_PROMPTS: tuple[str, ...] = ("{instrument}", "a {instrument} loop", "{instrument} sample")


def family_queries(family: str) -> list[str]:
    """Every synonym of ``family`` in every phrasing.

    >>> family_queries("arp")[:3]
    ['arp', 'arp sample', 'a loop with arp']
    """
    return [
        fix_articles(template.format(instrument=word))
        for word in INSTRUMENT_SYNONYMS[family]
        for template in FAMILY_QUERIES
    ]


def style_queries(style: str) -> list[str]:
    """Every name of drum style ``style`` in every phrasing.

    >>> style_queries("techno")[:2]
    ['techno drums', 'a techno beat']
    """
    return [
        fix_articles(template.format(style=word))
        for word in STYLE_SYNONYMS.get(style, (style,))
        for template in STYLE_QUERIES
    ]


# --- indexing -----------------------------------------------------------------------------------


def stems_only(manifest: Manifest) -> Manifest:
    """The manifest's stem entries: the measures are about audio, and rendering every MIDI file
    again would only slow the run (MIDI files are reported as skipped)."""
    entries = {path: e for path, e in manifest.entries.items() if kind_of(Path(path)) == "stem"}
    return Manifest(entries=entries, errors=manifest.errors, source=manifest.source)


def index_heldout(
    catalog: Path, embedder: ClapEmbedder, workdir: Path, progress: Progress
) -> tuple[VectorStore, dict[str, Any]]:
    """A fresh Edge store under ``workdir`` holding the catalog's stems."""
    manifest_path = find_manifest(catalog)
    if manifest_path is None:
        raise FileNotFoundError(f"no licence manifest in {catalog}: the measures need its labels")
    folder = workdir / "qdrant-edge"
    if folder.exists():
        shutil.rmtree(folder)  # fresh: a store of an earlier model would refuse this embedder
    folder.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(embedder.embedder, path=folder)
    indexer = Indexer(store, embedder, workers=2, progress=progress)
    report = indexer.run(
        catalog, catalog=CATALOG, manifest=stems_only(load_manifest(manifest_path))
    )
    return store, report.counts


def stem_points(store: VectorStore) -> list[Point]:
    """Every indexed stem, with vectors, in path order."""
    points = store.scroll(
        Filter(must=(Match("catalog", CATALOG), Match("kind", "stem"))), with_vectors=True
    )
    return sorted(points, key=lambda p: p.payload["path"])


# --- the measures -------------------------------------------------------------------------------


def precision(hits: Sequence[dict[str, Any]], key: str, wanted: str, k: int) -> float:
    """Share of the top ``k`` hits whose payload ``key`` is ``wanted`` (missing hits count as
    misses, so a short list cannot score high)."""
    return sum(hit.get(key) == wanted for hit in hits[:k]) / k


def text_precision(
    store: VectorStore,
    embedder: ClapEmbedder,
    queries: dict[str, list[str]],
    *,
    key: str,
    k: int,
    restrict: Iterable[Match] = (),
) -> dict[str, Any]:
    """Mean precision@k of text queries against audio vectors, per label and over labels; plus
    the same queries through the product's fused search, for reference."""
    must = (Match("catalog", CATALOG), Match("kind", "stem"), *restrict)
    per_label, fused = {}, {}
    for label, texts in queries.items():
        vectors = embedder.embed_text(texts)
        scores = []
        for vector in vectors:
            hits = store.search(
                "audio",
                vector,
                embedder_id=embedder.embedder.id,
                filter=Filter(must=must),
                limit=k,
                exact=True,
            )
            scores.append(precision([h.payload for h in hits], key, label, k))
        per_label[label] = float(np.mean(scores))
        fused[label] = float(
            np.mean([fused_precision(store, embedder, text, must, key, label, k) for text in texts])
        )
    return {
        "value": float(np.mean(list(per_label.values()))),
        "per_label": per_label,
        "queries": sum(len(texts) for texts in queries.values()),
        "fused_search": float(np.mean(list(fused.values()))),
    }


def fused_precision(
    store: VectorStore,
    embedder: ClapEmbedder,
    text: str,
    must: Sequence[Match],
    key: str,
    wanted: str,
    k: int,
) -> float:
    """Precision@k of ``text`` through the product's search (audio and caption rankings fused)."""
    fields = {m.key: m.value for m in must}
    request = SearchRequest(
        text=text, catalog=CATALOG, kind="stem", instrument=fields.get("instrument"), limit=k
    )
    return precision([h.payload for h in search(store, embedder, request)], key, wanted, k)


def example_query(point: Point, vector_name: str) -> np.ndarray:
    """The vector a stem searches with as a reference clip, as search makes it: its audio
    vector, or its timbre vector through the shipped query metric."""
    if vector_name == "timbre":
        return shipped_model().example_query(point.vectors["timbre"])
    return point.vectors[vector_name]


def example_precision(
    store: VectorStore,
    embedder: ClapEmbedder,
    points: Sequence[Point],
    k: int,
    vector_name: str = "audio",
):
    """Each stem's ``vector_name`` vector as a query (itself excluded): precision@k of its
    family (0 for a stem without that vector)."""
    per_family: dict[str, list[float]] = defaultdict(list)
    for point in points:
        family = point.payload["instrument"]
        if vector_name not in point.vectors:
            per_family[family].append(0.0)
            continue
        flt = Filter(
            must=(Match("catalog", CATALOG), Match("kind", "stem")),
            must_not=(Match("sha256", point.payload["sha256"]),),
        )
        hits = store.search(
            vector_name,
            example_query(point, vector_name),
            embedder_id=embedder.embedder.id,
            filter=flt,
            limit=k,
            exact=True,
        )
        per_family[family].append(precision([h.payload for h in hits], "instrument", family, k))
    return summarise(per_family)


def fused_example_precision(
    store: VectorStore,
    embedder: ClapEmbedder,
    folder: Path,
    points: Sequence[Point],
    family_of: dict[str, str],
    k: int,
) -> dict[str, Any]:
    """Each indexed file as a reference clip through the product's search (its audio ranking
    fused with what names and metadata say it is), itself excluded: precision@k of its family.
    ``family_of`` maps an item's path to its true family."""
    per_family: dict[str, list[float]] = defaultdict(list)
    for point in points:
        family = family_of[point.payload["path"]]
        request = SearchRequest(like=folder / point.payload["path"], catalog=CATALOG, kind="stem",
                                limit=k)  # fmt: skip
        found = [family_of.get(hit.payload["path"]) for hit in search(store, embedder, request)]
        per_family[family].append(sum(value == family for value in found) / k)
    return summarise(per_family)


def zero_shot_accuracy(embedder: ClapEmbedder, points: Sequence[Point]) -> dict[str, Any]:
    """Label each stem with the family whose mean prompt vector is closest to its audio."""
    families = sorted(INSTRUMENT_SYNONYMS)
    prompts = []
    for family in families:
        texts = [
            fix_articles(t.format(instrument=word))
            for word in INSTRUMENT_SYNONYMS[family]
            for t in ZERO_SHOT_PROMPTS
        ]
        mean = embedder.embed_text(texts).mean(axis=0)
        prompts.append(mean / np.linalg.norm(mean))
    audio = np.stack([p.vectors["audio"] for p in points])
    guesses = np.asarray(families)[np.argmax(audio @ np.stack(prompts).T, axis=1)]
    per_family: dict[str, list[float]] = defaultdict(list)
    for point, guess in zip(points, guesses, strict=True):
        per_family[point.payload["instrument"]].append(float(guess == point.payload["instrument"]))
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for point, guess in zip(points, guesses, strict=True):
        confusion[point.payload["instrument"]][str(guess)] += 1
    return {**summarise(per_family), "confusion": {f: dict(c) for f, c in confusion.items()}}


def caption_cosines(embedder: ClapEmbedder, points: Sequence[Point]) -> dict[str, Any]:
    """Mean cosine of caption pairs sharing neither family nor style (the measure), and of
    pairs sharing both (for contrast: a useful text tower keeps the second well above)."""
    captions = [p.payload["caption"] for p in points]
    vectors = embedder.embed_text(captions)
    family = np.asarray([p.payload["instrument"] for p in points])
    style = np.asarray([p.payload["genre"] for p in points])
    cosine = vectors @ vectors.T
    upper = np.triu(np.ones_like(cosine, dtype=bool), k=1)
    same_family, same_style = family[:, None] == family[None, :], style[:, None] == style[None, :]
    unrelated = upper & ~same_family & ~same_style
    related = upper & same_family & same_style
    return {
        "value": float(cosine[unrelated].mean()),
        "pairs": int(unrelated.sum()),
        "related_pairs_mean": float(cosine[related].mean()) if related.any() else None,
    }


def summarise(per_label: dict[str, list[float]]) -> dict[str, Any]:
    """Mean over all queries (the measure), per label, and the mean of the label means."""
    means = {label: float(np.mean(values)) for label, values in sorted(per_label.items())}
    everything = [v for values in per_label.values() for v in values]
    return {
        "value": float(np.mean(everything)),
        "per_label": means,
        "balanced": float(np.mean(list(means.values()))),
        "queries": len(everything),
    }


# --- the run ------------------------------------------------------------------------------------


def evaluate_retrieval(
    catalog: Path,
    embedder: ClapEmbedder,
    *,
    workdir: Path,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Index ``catalog``'s stems into a fresh store under ``workdir`` and compute the measures.

    Returns a JSON-ready dict: ``model``, ``catalog``, ``indexed`` counts, and ``measures``, each
    with ``value``, ``target``, ``passed`` and its breakdown (``per_label``: per family or style).
    """
    started = time.perf_counter()
    catalog = Path(catalog)
    store, counts = index_heldout(catalog, embedder, Path(workdir), progress or SilentProgress())
    try:
        points = stem_points(store)
        if not points:
            raise ValueError(f"no stems of {catalog} could be indexed: nothing to measure")
        families = sorted({p.payload["instrument"] for p in points})
        drum_styles = sorted(
            {p.payload["genre"] for p in points if p.payload["instrument"] == "drums"}
        )
        measures = {
            "text_family_p10": text_precision(
                store, embedder, {f: family_queries(f) for f in families}, key="instrument", k=10
            ),
            "text_drum_style_p10": text_precision(
                store,
                embedder,
                {s: style_queries(s) for s in drum_styles},
                key="genre",
                k=10,
                restrict=(Match("instrument", "drums"),),
            ),
            "example_family_p5": {
                **example_precision(store, embedder, points, k=5),
                "timbre_only": example_precision(store, embedder, points, 5, "timbre")["value"],
                "fused_search": fused_example_precision(
                    store,
                    embedder,
                    catalog,
                    points,
                    {p.payload["path"]: p.payload["instrument"] for p in points},
                    k=5,
                )["value"],
            },
            "zero_shot_family_accuracy": zero_shot_accuracy(embedder, points),
            "unrelated_caption_cosine": caption_cosines(embedder, points),
        }
    finally:
        store.close()
    for name, result in measures.items():
        target, higher = TARGETS[name]
        result["target"] = target
        result["passed"] = result["value"] >= target if higher else result["value"] <= target
    return {
        "model": embedder.embedder.id,
        "catalog": str(catalog.resolve()),
        "stems": len(points),
        "indexed": counts,
        "measures": measures,
        "seconds": round(time.perf_counter() - started, 1),
    }


def markdown_table(result: dict[str, Any]) -> str:
    """The measures as a markdown table, with each one's weakest label named."""
    lines = [
        f"Model `{result['model']}` on {result['stems']} held-out stems ({result['catalog']})",
        "",
        "| measure | value | target | pass | notes |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["measures"].items():
        higher = TARGETS[name][1]
        lines.append(
            f"| {LABELS[name]} | {m['value']:.3f} | {'≥' if higher else '≤'} {m['target']} "
            f"| {'yes' if m['passed'] else 'no'} | {notes(m)} |"
        )
    return "\n".join(lines)


def notes(measure: dict[str, Any]) -> str:
    """Breakdown hints for one table row."""
    parts = []
    if "balanced" in measure:
        parts.append(f"balanced {measure['balanced']:.3f}")
    if measure.get("per_label"):
        worst = min(measure["per_label"].items(), key=lambda kv: kv[1])
        parts.append(f"weakest {worst[0]} {worst[1]:.2f}")
    if "timbre_only" in measure:
        parts.append(f"timbre only {measure['timbre_only']:.3f}")
    if "fused_search" in measure:
        parts.append(f"fused search {measure['fused_search']:.3f}")
    if measure.get("related_pairs_mean") is not None:
        parts.append(f"same family+style pairs {measure['related_pairs_mean']:.3f}")
    return "; ".join(parts)


# --- real recordings ----------------------------------------------------------------------------
#
# ``audiorag eval retrieval --real DIR``: a folder of labelled real recordings (built by
# bench/real_audio/build.py from sources no model here was trained on) indexed as a user would
# index a library, then queried with the words users type. DIR holds the audio, a licence
# manifest and ``labels.csv`` (path, family, one_shot_type; an empty type for loops and notes).

REAL_LABELS_FILE = "labels.csv"
REAL_MIN_ITEMS = 5  # labels with fewer items are left out of the text measures
REAL_TARGETS: dict[str, float] = {
    "text_instrument_p10": 0.7,
    "one_shot_type_p10": 0.6,
    "example_family_p5": 0.85,
}
REAL_LABELS: dict[str, str] = {
    "text_instrument_p10": "text → instrument family, P@10 (mean over families)",
    "one_shot_type_p10": "text → one-shot type (kick/snare/hi-hat/clap/tom/cymbal), P@10",
    "example_family_p5": "query by example → same family, P@5",
}
REAL_QUERIES: tuple[str, ...] = ("{word}", "{word} sample", "a {word} sound", "{word} recording")


def phrased(words: Sequence[str]) -> list[str]:
    """The real-audio prompts of ``words``: each word in every :data:`REAL_QUERIES` phrasing."""
    return [fix_articles(q.format(word=w)) for w in words for q in REAL_QUERIES]


def real_labels(folder: Path) -> dict[str, dict[str, str]]:
    """``labels.csv`` of a real set: path → {family, one_shot_type}."""
    path = Path(folder) / REAL_LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {REAL_LABELS_FILE} in {folder}: build the set with "
                                "bench/real_audio/build.py")  # fmt: skip
    with path.open(encoding="utf-8", newline="") as rows:
        return {row["path"]: row for row in csv.DictReader(rows)}


def ranked_precision(
    store: VectorStore,
    embedder: ClapEmbedder,
    labelled: dict[str, dict[str, str]],
    texts: list[str],
    *,
    key: str,
    wanted: str,
    k: int,
    side: Literal["clap", "timbre"] = "clap",
) -> float:
    """Mean precision of ``texts`` over all indexed items; the top ``k`` is cut to the label's
    item count when it has fewer (so a label of 7 items can score 1.0). ``side`` "clap" ranks
    the audio vectors by the text's CLAP vector, "timbre" the timbre vectors by the prototype
    of the sound the text names (:func:`rag.search.text_timbre`; none named: precision 0)."""
    cut = min(k, sum(label[key] == wanted for label in labelled.values()))
    must = (Match("catalog", CATALOG), Match("kind", "stem"))
    if side == "clap":
        queries = [("audio", v) for v in embedder.embed_text(texts)]
    else:
        queries = [("timbre", text_timbre(text)) for text in texts]
    scores = []
    for vector_name, vector in queries:
        if vector is None:
            scores.append(0.0)
            continue
        hits = store.search(
            vector_name, vector, embedder_id=embedder.embedder.id, filter=Filter(must=must),
            limit=cut, exact=True,
        )  # fmt: skip
        found = [labelled.get(hit.payload["path"], {}).get(key) for hit in hits]
        scores.append(sum(value == wanted for value in found) / cut)
    return float(np.mean(scores))


def fused_ranked_precision(
    store: VectorStore,
    embedder: ClapEmbedder,
    labelled: dict[str, dict[str, str]],
    texts: list[str],
    *,
    key: str,
    wanted: str,
    k: int,
) -> float:
    """:func:`ranked_precision` through the product's search (audio, caption and file-name
    rankings fused): what ``audiorag search`` shows."""
    cut = min(k, sum(label[key] == wanted for label in labelled.values()))
    scores = []
    for text in texts:
        request = SearchRequest(text=text, catalog=CATALOG, kind="stem", limit=cut)
        hits = search(store, embedder, request)
        found = [labelled.get(hit.payload["path"], {}).get(key) for hit in hits]
        scores.append(sum(value == wanted for value in found) / cut)
    return float(np.mean(scores))


def anonymised_copy(folder: Path, out: Path) -> Path:
    """The real set with every file renamed to its number ("0007.wav"), labels and manifest
    remapped: the same audio with no name to read, so fused search shows what audio and
    analysis alone find."""
    labels = real_labels(folder)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    renamed = {path: f"{n:04d}{Path(path).suffix}" for n, path in enumerate(sorted(labels))}
    for path, name in renamed.items():
        shutil.copyfile(folder / path, out / name)
    rows = [{**labels[path], "path": name} for path, name in renamed.items()]
    with (out / REAL_LABELS_FILE).open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    manifest = [json.loads(line) for line in (folder / "licences.jsonl").read_text().splitlines()]
    with (out / "licences.jsonl").open("w", encoding="utf-8") as handle:
        for row in manifest:
            if row["path"] in renamed:
                handle.write(json.dumps({**row, "path": renamed[row["path"]]}) + "\n")
    return out


def evaluate_real(
    folder: Path,
    embedder: ClapEmbedder,
    *,
    workdir: Path,
    progress: Progress | None = None,
    hide_names: bool = False,
) -> dict[str, Any]:
    """Index the real set in ``folder`` and compute the three real-audio measures. With
    ``hide_names`` the files are renamed to numbers first (:func:`anonymised_copy`)."""
    from audiorag.democatalog.gm_names import FAMILY_WORDS, ONE_SHOT_TYPES, TYPE_WORDS

    started = time.perf_counter()
    folder = Path(folder)
    if hide_names:
        folder = anonymised_copy(folder, Path(workdir) / "anonymised")
    labels = real_labels(folder)
    store, counts = index_heldout(folder, embedder, Path(workdir), progress or SilentProgress())
    try:
        points = [p for p in stem_points(store) if p.payload["path"] in labels]
        if not points:
            raise ValueError(f"no labelled file of {folder} could be indexed: nothing to measure")
        labelled = {p.payload["path"]: labels[p.payload["path"]] for p in points}
        family_count = Counter(label["family"] for label in labelled.values())
        type_count = Counter(label["one_shot_type"] for label in labelled.values())
        families = sorted(f for f, n in family_count.items() if n >= REAL_MIN_ITEMS)
        types = [t for t in ONE_SHOT_TYPES if type_count[t] >= REAL_MIN_ITEMS]

        family_queries = {family: phrased(FAMILY_WORDS[family]) for family in families}
        type_queries = {kind: phrased(TYPE_WORDS[kind]) for kind in types}
        per_family, fused_family, per_type, fused_type = {}, {}, {}, {}
        timbre_family, timbre_type = {}, {}
        for family, texts in family_queries.items():
            where = {"key": "family", "wanted": family, "k": 10}
            per_family[family] = ranked_precision(store, embedder, labelled, texts, **where)
            fused_family[family] = fused_ranked_precision(store, embedder, labelled, texts, **where)
            timbre_family[family] = ranked_precision(
                store, embedder, labelled, texts, **where, side="timbre"
            )
        for kind, texts in type_queries.items():
            where = {"key": "one_shot_type", "wanted": kind, "k": 10}
            per_type[kind] = ranked_precision(store, embedder, labelled, texts, **where)
            fused_type[kind] = fused_ranked_precision(store, embedder, labelled, texts, **where)
            timbre_type[kind] = ranked_precision(
                store, embedder, labelled, texts, **where, side="timbre"
            )
        by_example: dict[str, list[float]] = defaultdict(list)
        by_timbre: dict[str, list[float]] = defaultdict(list)
        for point in points:
            family = labelled[point.payload["path"]]["family"]
            flt = Filter(
                must=(Match("catalog", CATALOG), Match("kind", "stem")),
                must_not=(Match("sha256", point.payload["sha256"]),),
            )
            for name, shares in (("audio", by_example), ("timbre", by_timbre)):
                if name not in point.vectors:  # no timbre vector: the timbre side finds nothing
                    shares[family].append(0.0)
                    continue
                hits = store.search(
                    name, example_query(point, name), embedder_id=embedder.embedder.id,
                    filter=flt, limit=5, exact=True,
                )  # fmt: skip
                same = [labelled.get(h.payload["path"], {}).get("family") == family for h in hits]
                shares[family].append(sum(same) / 5)
        family_of = {path: label["family"] for path, label in labelled.items()}
        fused_example = fused_example_precision(store, embedder, folder, points, family_of, k=5)
    finally:
        store.close()
    measures = {
        "text_instrument_p10": {
            "value": float(np.mean(list(per_family.values()))),
            "per_label": per_family,
            "timbre_only": float(np.mean(list(timbre_family.values()))),
            "timbre_per_label": timbre_family,
            "fused_search": float(np.mean(list(fused_family.values()))),
            "fused_per_label": fused_family,
        },
        "one_shot_type_p10": {
            "value": float(np.mean(list(per_type.values()))),
            "per_label": per_type,
            "timbre_only": float(np.mean(list(timbre_type.values()))),
            "timbre_per_label": timbre_type,
            "fused_search": float(np.mean(list(fused_type.values()))),
            "fused_per_label": fused_type,
        },
        "example_family_p5": {
            **summarise(by_example),
            "timbre_only": summarise(by_timbre)["value"],
            "fused_search": fused_example["value"],
        },
    }
    for name, result in measures.items():
        result["target"] = REAL_TARGETS[name]
        result["passed"] = result["value"] >= REAL_TARGETS[name]
    return {
        "model": embedder.embedder.id,
        "real_set": str(folder.resolve()),
        "names_hidden": hide_names,
        "files": len(points),
        "families": dict(sorted(family_count.items())),
        "one_shot_types": dict(sorted(type_count.items())),
        "indexed": counts,
        "measures": measures,
        "seconds": round(time.perf_counter() - started, 1),
    }


def real_markdown_table(result: dict[str, Any]) -> str:
    """The real-audio measures as a markdown table."""
    lines = [
        f"Model `{result['model']}` on {result['files']} real recordings ({result['real_set']}"
        + (", file names hidden)" if result.get("names_hidden") else ")"),
        "",
        "| measure | value | target | pass | notes |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["measures"].items():
        lines.append(
            f"| {REAL_LABELS[name]} | {m['value']:.3f} | ≥ {m['target']} "
            f"| {'yes' if m['passed'] else 'no'} | {notes(m)} |"
        )

    def per(key: str) -> str:
        return "; ".join(
            f"{label} {value:.2f}"
            for name in ("text_instrument_p10", "one_shot_type_p10")
            for label, value in result["measures"][name].get(key, {}).items()
        )

    breakdowns = {
        title: per(key)
        for title, key in (
            ("Per label", "per_label"),
            ("Per label, timbre only", "timbre_per_label"),
            ("Per label, fused search", "fused_per_label"),
        )
    }
    return "\n".join(lines) + "".join(f"\n\n{t}: {b}" for t, b in breakdowns.items() if b)
