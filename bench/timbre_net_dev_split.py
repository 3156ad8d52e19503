"""The timbre net against the hand-made descriptors it replaced, on the development split.

    python bench/timbre_net_dev_split.py --train /tmp/train/demo --train /tmp/train/oneshots \
        --dev /tmp/train/samples        # ~15 min; writes bench/results/timbre_net_dev_split.md

A net is trained as ``audiorag train timbre-net`` trains the shipped one, but on the ``--train``
catalogs only, so the development files (real sample packs) are unheard; the prototypes are
fitted on its embedding as ``audiorag train timbre`` fits them (files as they are and through
two recording chains). The measures are those of ``bench/timbre_dev_split.py`` (text → family
and one-shot type P@10 by prototype, same family by example P@5), whose table for the hand-made
timbre-v1 statistics on the same split is in ``bench/results/timbre_dev_split.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from timbre_dev_split import TYPES, by_example, precision  # noqa: E402

from audiorag.training import fit_timbre  # noqa: E402
from audiorag.training.train_timbre_net import train_timbre_net  # noqa: E402
from index.timbre import TimbreScale  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=Path, action="append", required=True)
    parser.add_argument("--dev", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/timbre_net_dev_split.md")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        print("training a net on the training catalogs only", file=sys.stderr, flush=True)
        net = train_timbre_net(
            args.train, Path(folder) / "net", epochs=args.epochs,
            on_epoch=lambda e, loss: print(f"epoch {e}: loss {loss:.3f}", file=sys.stderr),
        )  # fmt: skip
    print("describing", file=sys.stderr, flush=True)
    train = fit_timbre.describe_files(args.train, features=net.embed_clip)
    dev = fit_timbre.describe_files([args.dev], recorded_views=0, features=net.embed_clip)
    scale = TimbreScale.fit(train.features[train.as_is()])
    xt, xd = scale.apply(train.features), scale.apply(dev.features)
    labels = {
        name: np.array([label or "" for label in values])
        for name, values in (("family", dev.family), ("sound", dev.sound))
    }
    families = fit_timbre.prototypes(xt, train.family, train.file)
    sounds = fit_timbre.prototypes(xt, train.sound, train.file)
    types = {t: sounds[t] for t in TYPES if t in sounds}
    rows = [
        f"| timbre net embedding, regression weights C={fit_timbre.REGULARISATION}, "
        f"as is + {fit_timbre.RECORDED_VIEWS} recording views | "
        f"{precision(xd, labels['family'], families):.3f} | "
        f"{precision(xd, labels['sound'], types):.3f} | {by_example(xd, labels['family']):.3f} |"
    ]
    for shrinkage in (0.1, 0.5, 0.9):
        metric = fit_timbre.query_metric(xt, train.sound, train.file, shrinkage)
        found = by_example(xd, labels["family"], metric=metric)
        rows.append(f"| same, query metric: LDA over sounds, {shrinkage} | | | {found:.3f} |")
    trained_on = ", ".join(p.name for p in args.train)
    table = "\n".join(
        [
            f"Timbre net, development split: net and prototypes fitted on {trained_on} "
            f"({int(train.as_is().sum())} files, {args.epochs} epochs), tested on "
            f"{args.dev.name} ({len(dev.file)} real files); "
            f"{(time.perf_counter() - started) / 60:.0f} min.",
            "",
            "| timbre vectors | text → family P@10 | text → one-shot type P@10 | by example P@5 |",
            "|---|---|---|---|",
            "| hand-made statistics (timbre-v1, shipped until 2026-12-03; "
            "`timbre_dev_split.md`) | 0.516 | 0.696 | 0.599 (0.624 with its metric) |",
            *rows,
        ]
    )
    args.out.write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
