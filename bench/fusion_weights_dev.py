"""How much the timbre rankings weigh in fused search, chosen on a development split.

    python bench/timbre_dev_split.py --train /tmp/train/demo --train /tmp/train/oneshots \
        --dev /tmp/train/samples                      # first: caches the features
    python bench/fusion_weights_dev.py --dev /tmp/train/samples   # ~20 min; writes
                                                      # bench/results/fusion_weights_dev.md

The real sample packs (``audiorag catalog sample-packs``) become a labelled real set in the
format of ``audiorag eval retrieval --real`` (labels from their manifest; the copy's manifest
keeps only the licences), and are evaluated with names hidden (only the bundled CLAP and the
timbre side can find anything) and with their names (what most libraries look like). The
prototypes are fitted as ``audiorag train timbre`` fits them but on the demo loops and
one-shots only (the features cached by ``timbre_dev_split.py``), so the development files are
not among them; the stored vectors use the shipped scale. Each row is one choice of
:data:`rag.search.RANKING_WEIGHTS` for ``text→timbre`` and ``clip→timbre``.

Written for timbre-v1; its table in ``bench/README.md`` chose today's weights. With timbre-v2 the
indexing workers describe with the shipped timbre net, which heard the development files in
training, so this split would favour the timbre side: re-choosing the weights needs a net
trained without them in the workers too (not done yet; ``index/models/timbre-net/TRAINING.md``).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rag.search as search  # noqa: E402
from audiorag.evaluation.eval_retrieval import evaluate_real  # noqa: E402
from audiorag.training import fit_timbre  # noqa: E402
from index.clap import BUNDLED_CLAP, ClapEmbedder  # noqa: E402
from index.timbre import TimbreModel, TimbrePrototypes, shipped_model  # noqa: E402

ONE_SHOT_TYPES = {"kick", "snare", "hi-hat", "clap", "tom", "cymbal", "rim", "percussion"}
# (prompt's timbre weight, reference's timbre weight), each the same with and without names;
# None: as shipped (rag.search: 2 beside files named as asked, 3 where none is; reference 1).
WEIGHTS: list[tuple[float, float] | None] = [
    (1.0, 1.0), (2.0, 1.0), (3.0, 1.0), (4.0, 1.0), (8.0, 1.0), (2.0, 2.0), None,
]  # fmt: skip


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
            kind = sound if meta["instrument"] == "drums" and sound in ONE_SHOT_TYPES else ""
            rows.append([entry["path"], meta["instrument"], kind, meta.get("source", "")])
    with (out / "labels.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["path", "family", "one_shot_type", "source"], *rows])
    return len(rows)


def dev_model(cache: Path) -> TimbreModel:
    """The shipped scale with prototypes fitted on the cached training features only."""
    cached = np.load(cache)
    scale = shipped_model().scale
    vectors = scale.apply(cached["train_x"])
    files = cached["train_file"]
    return TimbreModel(
        scale,
        TimbrePrototypes(
            fit_timbre.prototypes(vectors, list(cached["train_family"]), files),
            fit_timbre.prototypes(vectors, list(cached["train_sound"]), files),
        ),
        ("demo", "oneshots"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev", type=Path, required=True, help="sample-packs catalog")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/timbre_dev_split.npz"))
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fusion_weights_dev"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/fusion_weights_dev.md")
    args = parser.parse_args()
    files = labelled_copy(args.dev, args.workdir / "real")
    model = dev_model(args.cache)
    search.shipped_model = lambda: model  # prompts' prototypes: the dev model's (main process)
    embedder = ClapEmbedder.from_pretrained(BUNDLED_CLAP)
    rows = []
    measures = ("text_instrument_p10", "one_shot_type_p10", "example_family_p5")
    shipped = dict(search.RANKING_WEIGHTS), search.TEXT_TIMBRE_WEIGHT_UNNAMED
    for weights in WEIGHTS:
        search.RANKING_WEIGHTS.clear()
        search.RANKING_WEIGHTS.update(shipped[0])
        search.TEXT_TIMBRE_WEIGHT_UNNAMED = shipped[1]
        if weights is not None:
            search.RANKING_WEIGHTS["text→timbre"] = search.TEXT_TIMBRE_WEIGHT_UNNAMED = weights[0]
            search.RANKING_WEIGHTS["clip→timbre"] = weights[1]
        figures = []
        for hide_names in (True, False):
            work = args.workdir / "work"
            result = evaluate_real(
                args.workdir / "real", embedder, workdir=work, hide_names=hide_names
            )
            figures += [f"{result['measures'][name]['fused_search']:.3f}" for name in measures]
        named, unnamed = shipped[0]["text→timbre"], shipped[1]
        chosen = (
            f"{named:g} named / {unnamed:g} unnamed (shipped) | "
            f"{shipped[0].get('clip→timbre', 1.0):g}"
            if weights is None
            else "{:g} | {:g}".format(*weights)
        )
        rows.append(f"| {chosen} | " + " | ".join(figures) + " |")
        print(rows[-1], flush=True)
    m = result["measures"]
    alone = " / ".join(
        f"{m[name][side]:.3f}" for side in ("value", "timbre_only") for name in measures
    )
    table = "\n".join(
        [
            f"Fused search on {files} real sample-pack files (prototypes fitted on demo + "
            "one-shots only), names hidden and as shipped.",
            "",
            "| text→timbre weight | clip→timbre weight | hidden: family P@10 | hidden: one-shot "
            "type P@10 | hidden: by example P@5 | named: family P@10 | named: one-shot type "
            "P@10 | named: by example P@5 |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Unfused, family / type / by example: CLAP alone, then timbre alone: {alone}.",
        ]
    )
    args.out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
