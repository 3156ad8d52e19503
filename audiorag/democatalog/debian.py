"""Debian packages as data sources: downloaded with ``apt-get download``, unpacked with
``dpkg -x``, never installed (no root, no maintainer scripts).

Used for the held-out real-audio set (``bench/real_audio/build.py``) and the sample-pack
training catalog (:mod:`audiorag.democatalog.sample_packs`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path


def unpacked(debs: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Each package unpacked under ``debs/x_<package>`` (its file tree from ``/`` down),
    downloading the ``.deb`` into ``debs`` first if it is not there; an unpacked tree already
    there is used as is."""
    debs = Path(debs)
    debs.mkdir(parents=True, exist_ok=True)
    roots = {}
    for package in packages:
        root = debs / f"x_{package}"
        if not root.is_dir():
            found = sorted(debs.glob(f"{package}_*.deb"))
            if not found:
                subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
                found = sorted(debs.glob(f"{package}_*.deb"))
            subprocess.run(["dpkg", "-x", str(found[-1]), str(root)], check=True)
        roots[package] = root
    return roots
