"""How much the timbre rankings weigh in fused search, chosen on a development split.

    audiorag train timbre-net --catalog /tmp/train/demo --catalog /tmp/train/oneshots \
        --out /tmp/devnet/net                                  # ~7 min: a net without them
    audiorag train timbre --net /tmp/devnet/net --catalog /tmp/train/demo \
        --catalog /tmp/train/oneshots --out /tmp/devnet/timbre.json
    python bench/fusion_weights_dev.py --dev /tmp/train/samples --net /tmp/devnet/net \
        --model /tmp/devnet/timbre.json      # ~25 min; writes bench/results/fusion_weights_dev.md
    python bench/fusion_weights_dev.py … --clap /tmp/clap-loops \
        --out bench/results/fusion_weights_dev_loops_clap.md   # a CLAP that never heard them

The real sample packs (``audiorag catalog sample-packs``) become a labelled real set in the
format of ``audiorag eval retrieval --real`` (labels from their manifest; the copy's manifest
keeps only the licences). The shipped timbre net heard them in training, so the split uses a
net and prototypes fitted on the demo loops and one-shot renders only, named by
``AUDIORAG_TIMBRE_NET`` / ``AUDIORAG_TIMBRE_MODEL`` for this process and its indexing workers.
The set is indexed twice, with names hidden (only the bundled CLAP and the timbre side can find
anything) and with its names (what most libraries look like), and each store is searched under
every weight of :data:`rag.search.RANKING_WEIGHTS` tried: a prompt's timbre ranking beside
files named as asked (``text→timbre``) and where none is (``TEXT_TIMBRE_WEIGHT_UNNAMED``), and
a reference clip's (``clip→timbre``, ``CLIP_TIMBRE_WEIGHT_UNNAMED``). Text measures depend only
on the text weights, by-example only on the clip's, so each is varied alone. The bundled CLAP
heard these files in training, which flatters its side; the loops-only CLAP it replaced
(``git show f1fb747^:index/models/clap-demo/…`` into a folder) never did, which bounds it from
below.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag.search as search  # noqa: E402
from audiorag.democatalog.gm_names import FAMILY_WORDS, ONE_SHOT_TYPES, TYPE_WORDS  # noqa: E402
from audiorag.evaluation.eval_retrieval import (  # noqa: E402
    REAL_MIN_ITEMS,
    anonymised_copy,
    fused_example_precision,
    fused_ranked_precision,
    index_heldout,
    phrased,
    real_labels,
    stem_points,
)
from index.clap import BUNDLED_CLAP, ClapEmbedder  # noqa: E402
from index.ingest import SilentProgress  # noqa: E402
from index.store import VectorStore  # noqa: E402
from index.timbre import MODEL_ENV  # noqa: E402
from index.timbre_net import NET_ENV  # noqa: E402

TEXT_WEIGHTS = (1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0)
CLIP_WEIGHTS = (1.0, 2.0, 3.0, 4.0, 8.0, 16.0)
DRUM_TYPES = {"kick", "snare", "hi-hat", "clap", "tom", "cymbal", "rim", "percussion"}
SHIPPED = (
    search.TEXT_TIMBRE_WEIGHT,
    search.TEXT_TIMBRE_WEIGHT_UNNAMED,
    search.RANKING_WEIGHTS.get("clip→timbre", 1.0),
    search.CLIP_TIMBRE_WEIGHT_UNNAMED,
)


def labelled_copy(catalog: Path, out: Path) -> int:
    """The catalog's labelled files as a real set: files, licences only, labels.csv."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = []
    with (out / "licences.jsonl").open("w") as licences:
        for line in (catalog / "licences.jsonl").read_text().splitlines():
            entry = json.loads(line)
            meta = entry.get("meta") or {}
            if not meta.get("instrument"):
                continue
            (out / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(catalog / entry["path"], out / entry["path"])
            licences.write(json.dumps({"path": entry["path"], "licence": entry["licence"]}) + "\n")
            sound = meta.get("sound") or ""
            kind = sound if meta["instrument"] == "drums" and sound in DRUM_TYPES else ""
            rows.append([entry["path"], meta["instrument"], kind, meta.get("source", "")])
    with (out / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["path", "family", "one_shot_type", "source"], *rows])
    return len(rows)


def weighted(text: float, unnamed: float, clip: float, clip_unnamed: float) -> None:
    """Set the fusion weights :mod:`rag.search` reads at every search."""
    search.RANKING_WEIGHTS["text→timbre"] = text
    search.TEXT_TIMBRE_WEIGHT_UNNAMED = unnamed
    search.RANKING_WEIGHTS["clip→timbre"] = clip
    search.CLIP_TIMBRE_WEIGHT_UNNAMED = clip_unnamed


def measure(store: VectorStore, embedder: ClapEmbedder, folder: Path) -> dict[str, Callable]:
    """The three fused measures of ``audiorag eval retrieval --real`` on an indexed store, each
    a function to call once the weights are set."""
    labels = real_labels(folder)
    points = [p for p in stem_points(store) if p.payload["path"] in labels]
    labelled = {p.payload["path"]: labels[p.payload["path"]] for p in points}
    family_count = Counter(label["family"] for label in labelled.values())
    type_count = Counter(label["one_shot_type"] for label in labelled.values())
    families = sorted(f for f, n in family_count.items() if n >= REAL_MIN_ITEMS)
    types = [t for t in ONE_SHOT_TYPES if type_count[t] >= REAL_MIN_ITEMS]

    def mean_precision(key: str, words: dict[str, tuple[str, ...]], wanted: list[str]) -> float:
        scores = [
            fused_ranked_precision(
                store, embedder, labelled, phrased(words[label]), key=key, wanted=label, k=10
            )
            for label in wanted
        ]
        return sum(scores) / len(scores)

    def by_example() -> float:
        family_of = {path: label["family"] for path, label in labelled.items()}
        return fused_example_precision(store, embedder, folder, points, family_of, k=5)["value"]

    return {
        "family": lambda: mean_precision("family", FAMILY_WORDS, families),
        "type": lambda: mean_precision("one_shot_type", TYPE_WORDS, types),
        "example": by_example,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, required=True, help="sample-packs catalog")
    parser.add_argument("--net", type=Path, required=True, help="a net trained without --dev")
    parser.add_argument("--model", type=Path, required=True, help="prototypes fitted on it")
    parser.add_argument(
        "--clap",
        type=Path,
        default=BUNDLED_CLAP,
        help="default: the bundled CLAP, which heard "
        "the sample packs in training; a CLAP that did not (the loops-only model) bounds it",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fusion_weights_dev"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/fusion_weights_dev.md")
    args = parser.parse_args()
    os.environ[NET_ENV], os.environ[MODEL_ENV] = str(args.net.resolve()), str(args.model.resolve())
    started = time.perf_counter()
    files = labelled_copy(args.dev, args.workdir / "real")
    embedder = ClapEmbedder.from_pretrained(args.clap)
    text_rows: dict[float, list[str]] = {w: [] for w in TEXT_WEIGHTS}
    clip_rows: dict[float, list[str]] = {w: [] for w in CLIP_WEIGHTS}
    for hide_names in (True, False):
        folder = args.workdir / "real"
        if hide_names:
            folder = anonymised_copy(folder, args.workdir / "anonymised")
        work = args.workdir / ("hidden" if hide_names else "named")
        store, _ = index_heldout(folder, embedder, work, SilentProgress())
        try:
            measures = measure(store, embedder, folder)
            for w in TEXT_WEIGHTS:  # names hidden: no file is named as asked, so "unnamed"
                weighted(SHIPPED[0] if hide_names else w, w, *SHIPPED[2:])
                text_rows[w] += [f"{measures['family']():.3f}", f"{measures['type']():.3f}"]
                print(w, text_rows[w], file=sys.stderr, flush=True)
            for w in CLIP_WEIGHTS:  # names hidden: no item is named as the clip, so "unnamed"
                weighted(*SHIPPED[:2], w, w)
                clip_rows[w].append(f"{measures['example']():.3f}")
                print(w, clip_rows[w], file=sys.stderr, flush=True)
        finally:
            store.close()
    weighted(*SHIPPED)  # as shipped again
    table = "\n".join(
        [
            f"Fused search on {files} real sample-pack files; timbre net and prototypes fitted "
            f"on the demo loops and one-shot renders only; CLAP `{embedder.embedder.id}` "
            f"({(time.perf_counter() - started) / 60:.0f} min).",
            "",
            "A prompt's timbre weight: names hidden, it is the weight where no file is named as "
            "asked (`TEXT_TIMBRE_WEIGHT_UNNAMED`); named, beside files named as asked "
            "(`RANKING_WEIGHTS['text→timbre']`).",
            "",
            "| text→timbre weight | hidden: family P@10 | hidden: one-shot type P@10 "
            "| named: family P@10 | named: one-shot type P@10 |",
            "|---|---|---|---|---|",
            *(f"| {w:g} | " + " | ".join(r) + " |" for w, r in text_rows.items()),
            "",
            "| clip→timbre weight | hidden: by example P@5 | named: by example P@5 |",
            "|---|---|---|",
            *(f"| {w:g} | " + " | ".join(r) + " |" for w, r in clip_rows.items()),
            "",
            f"Shipped: prompt {SHIPPED[0]:g} beside named files, {SHIPPED[1]:g} where none is; "
            f"clip {SHIPPED[2]:g} beside named items, {SHIPPED[3]:g} where none is.",
        ]
    )
    args.out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
