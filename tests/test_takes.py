"""Writing takes: all or nothing, and what a killed writer leaves behind is swept later."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from rag.takes import sweep_partial_takes, write_take


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_removes_only_old_partial_folders_and_never_takes(tmp_path):
    tenant = tmp_path / "acme"
    take = write_take(tenant, "take-1", np.zeros((1, 800)), 8000, {"id": "take-1"}).folder
    abandoned = tenant / ".partial-take-2-x1"  # a writer killed mid-write, two hours ago
    abandoned.mkdir()
    (abandoned / "audio.wav").write_bytes(b"half")
    _age(abandoned, 7200)
    live = tenant / ".partial-take-3-x2"  # another replica writing right now
    live.mkdir()
    top_level = tmp_path / ".partial-take-4-x3"  # an out dir used without tenant folders
    top_level.mkdir()
    _age(top_level, 7200)
    _age(take, 7200)  # old takes are kept, whatever their age

    removed = sweep_partial_takes(tmp_path, older_than_s=3600)

    assert sorted(removed) == sorted([abandoned, top_level])
    assert not abandoned.exists() and not top_level.exists()
    assert live.is_dir() and (take / "manifest.json").is_file()


def test_a_failed_write_leaves_no_partial_folder(tmp_path):
    with pytest.raises(KeyError):
        write_take(tmp_path, "take-1", np.zeros((1, 800)), 8000, {}, formats=("mp9",))
    assert list(tmp_path.iterdir()) == []


def test_a_render_worker_sweeps_abandoned_partial_takes_when_it_starts(tmp_path):
    from audiorag.api.db import Database, db_path
    from audiorag.api.generation import build_generate_request
    from audiorag.api.jobs import RenderWorker
    from audiorag.api.metrics import Metrics

    takes = tmp_path / "takes"
    abandoned = takes / "acme" / ".partial-take-1-x1"  # its writer was killed -9 long ago
    abandoned.mkdir(parents=True)
    _age(abandoned, 7200)
    db = Database(db_path(tmp_path / "data"))
    worker = RenderWorker(
        db,
        lambda: None,
        build_generate_request,
        out_dir=lambda tenant: takes / tenant,
        threads=1,
        metrics=Metrics(),
        takes_root=takes,
    )
    worker.start()
    try:
        assert not abandoned.exists()
        assert (takes / "acme").is_dir()
    finally:
        worker.stop()
        db.close()
