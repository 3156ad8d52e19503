"""How to fit the timbre prototypes, chosen on a development split that no held-out set sees.

    python bench/timbre_dev_split.py --train /tmp/train/demo --train /tmp/train/oneshots \
        --dev /tmp/train/samples                 # writes bench/results/timbre_dev_split.md

Fits on the training catalogs (the demo loops and the one-shot renders), tests on real
recorded samples (``audiorag catalog sample-packs``: also training data of the shipped model,
but not of this split). Each variant ranks the development files' timbre vectors against each
family's and one-shot type's prototype and reports P@10 as ``audiorag eval retrieval --real``
does (mean over the labels with at least 5 files; the top is cut to a smaller label's size);
query by example (P@5, same family) shows what the scale alone gives, and what each query metric
(:func:`audiorag.training.fit_timbre.query_metric`: shrinkage LDA over the named sounds or the
families, the query mapped through ``W Wᵀ``) gives. Features are cached in
``--cache`` (a rerun with the same catalogs skips the ~10 min of describing).

Written for timbre-v1 (the hand-made statistics); its table in ``bench/README.md`` is theirs.
Since timbre-v2 the features are the shipped timbre net's, which heard the development files in
training: the net's own split is ``bench/timbre_net_dev_split.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiorag.training import fit_timbre  # noqa: E402
from index.timbre import TimbreScale  # noqa: E402

TYPES = ("kick", "snare", "hi-hat", "clap", "tom", "cymbal")


def describe(catalogs: list[Path], views: int) -> dict[str, np.ndarray]:
    """Raw features of every file (view 0 as it is, then recording-chain views) and labels."""
    files = fit_timbre.audio_files(catalogs)

    def progress(path: Path, error: str | None) -> None:
        if error:
            print(f"skipped {path}: {error}", file=sys.stderr)

    print(f"describing {len(files)} files", file=sys.stderr, flush=True)
    found = fit_timbre.describe_files(catalogs, recorded_views=views - 1, on_file=progress)
    file = np.array(found.file)
    starts = np.flatnonzero(found.as_is())
    return {
        "x": found.features,
        "family": np.array([f or "" for f in found.family]),
        "sound": np.array([s or "" for s in found.sound]),
        "view": np.arange(file.size) - starts[file],
        "file": file,
    }


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def precision(vectors: np.ndarray, labels: np.ndarray, queries: dict[str, np.ndarray]) -> float:
    """Mean P@10 over the labels with ≥ 5 files that have a query vector."""
    scores = []
    for label in sorted(set(labels) & set(queries)):
        relevant = labels == label
        if label and relevant.sum() >= 5:
            k = min(10, int(relevant.sum()))
            top = np.argsort(-(unit(vectors) @ unit(queries[label])))[:k]
            scores.append(float(relevant[top].mean()))
    return float(np.mean(scores))


def by_example(
    vectors: np.ndarray, labels: np.ndarray, k: int = 5, metric: np.ndarray | None = None
) -> float:
    """Same-label P@k of each vector as a query against the others; ``metric`` maps the
    query (not the searched vectors) through ``metric @ metric.T``, as search does."""
    v = unit(vectors[labels != ""])
    labels = labels[labels != ""]
    queries = v if metric is None else unit(v @ metric @ metric.T)
    sims = queries @ v.T
    np.fill_diagonal(sims, -np.inf)
    return float((labels[np.argsort(-sims, axis=1)[:, :k]] == labels[:, None]).mean())


def class_means(vectors: np.ndarray, labels: np.ndarray, files: np.ndarray) -> dict:
    """The former prototypes: each label's mean unit vector (≥ MIN_EXAMPLES files)."""
    out = {}
    for label in set(labels) - {""}:
        if len(set(files[labels == label])) >= fit_timbre.MIN_EXAMPLES:
            out[label] = unit(unit(vectors[labels == label]).mean(axis=0))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, action="append", required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/timbre_dev_split.npz"))
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/timbre_dev_split.md")
    args = parser.parse_args()
    views = 1 + fit_timbre.RECORDED_VIEWS
    if args.cache.exists():
        cached = np.load(args.cache)
        train = {k[6:]: cached[k] for k in cached.files if k.startswith("train_")}
        dev = {k[4:]: cached[k] for k in cached.files if k.startswith("dev_")}
    else:
        train, dev = describe(args.train, views), describe([args.dev], 1)
        np.savez(args.cache, **{f"train_{k}": v for k, v in train.items()},
                 **{f"dev_{k}": v for k, v in dev.items()})  # fmt: skip
    scale = TimbreScale.fit(train["x"][train["view"] == 0])
    xt, xd = scale.apply(train["x"]), scale.apply(dev["x"])
    rows = []
    for views_used in (1, views):
        pick = train["view"] < views_used
        x, files = xt[pick], train["file"][pick]
        fam, snd = train["family"][pick], train["sound"][pick]
        seen = "as is" if views_used == 1 else f"as is + {views_used - 1} recording views"
        variants = {
            f"class means, {seen}": (class_means(x, fam, files), class_means(x, snd, files))
        }
        for c in (0.03, 0.1, 0.3, 1.0):
            variants[f"regression weights C={c}, {seen}"] = (
                fit_timbre.prototypes(x, fam, files, regularisation=c),
                fit_timbre.prototypes(x, snd, files, regularisation=c),
            )
        for name, (families, sounds) in variants.items():
            types = {t: sounds[t] for t in TYPES if t in sounds}
            p_family = precision(xd, dev["family"], families)
            rows.append(f"| {name} | {p_family:.3f} | {precision(xd, dev['sound'], types):.3f} |")
    metrics = []
    for labels_name, labels in (("named sounds", train["sound"]), ("families", train["family"])):
        for shrinkage in (0.1, 0.3, 0.5, 0.7):
            metric = fit_timbre.query_metric(xt, list(labels), train["file"], shrinkage)
            found = by_example(xd, dev["family"], metric=metric)
            metrics.append(f"| LDA over {labels_name}, shrinkage {shrinkage} | {found:.3f} |")
    trained_on = ", ".join(p.name for p in args.train)
    table = "\n".join(
        [
            f"Timbre prototypes, development split: fitted on {trained_on} "
            f"({len(set(train['file']))} files), tested on {args.dev.name} "
            f"({len(dev['file'])} real files).",
            "",
            "| prototypes | text → family P@10 | text → one-shot type P@10 |",
            "|---|---|---|",
            *rows,
            "",
            "Query by example (the scale alone, no prototypes): same family P@5 "
            f"{by_example(xd, dev['family']):.3f}. With a query metric:",
            "",
            "| query metric | by example, same family P@5 |",
            "|---|---|",
            *metrics,
        ]
    )
    args.out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
