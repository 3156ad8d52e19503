"""Cluster-ready collections: shards, replicas, write consistency, on-disk vectors and int8
quantisation from settings, for collections created on a Qdrant server (qdrant-client local
mode stands in: it keeps the on-disk flag and drops what only a server has)."""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import models

from audiorag.components import load_store
from audiorag.settings import Settings
from index.store import VECTOR_NAMES, Embedder, Point, ServerCollection, vector_sizes
from index.store.client import ClientStore, create_collection_kwargs

EMBEDDER = Embedder("test@0", 4)
CLUSTER = ServerCollection(
    shard_number=6,
    replication_factor=2,
    write_consistency_factor=2,
    on_disk_vectors=True,
    quantization="int8",
)


def test_layout_becomes_create_collection_arguments():
    kwargs = create_collection_kwargs(4, CLUSTER)
    assert kwargs["shard_number"] == 6
    assert kwargs["replication_factor"] == 2
    assert kwargs["write_consistency_factor"] == 2
    assert set(kwargs["vectors_config"]) == set(VECTOR_NAMES)
    for name, params in kwargs["vectors_config"].items():
        assert params.size == vector_sizes(4)[name] and params.distance is models.Distance.COSINE
        assert params.on_disk is True
    scalar = kwargs["quantization_config"].scalar
    assert scalar.type is models.ScalarType.INT8 and scalar.always_ram is True


def test_no_layout_keeps_the_server_defaults():
    kwargs = create_collection_kwargs(4, None)
    assert set(kwargs) == {"vectors_config"}
    assert all(p.on_disk is None for p in kwargs["vectors_config"].values())
    with pytest.raises(ValueError, match="quantization"):
        create_collection_kwargs(4, ServerCollection(quantization="int4"))


def test_the_create_call_carries_the_layout_and_the_store_works():
    store = ClientStore.local(EMBEDDER, layout=CLUSTER)
    try:
        params = store.client.get_collection("audiorag").config.params
        assert all(params.vectors[name].on_disk for name in VECTOR_NAMES)
        vector = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
        store.upsert([Point("00000000-0000-0000-0000-000000000001", {"embedder": "test@0"},
                            {"audio": vector, "text": vector})])  # fmt: skip
        (hit,) = store.search("audio", vector, embedder_id="test@0", limit=1)
        assert hit.score == pytest.approx(1.0)
    finally:
        store.close()


def test_settings_reach_a_server_store_only(tmp_path, embedder, monkeypatch):
    """load_store turns the qdrant_* settings into the layout; open_store applies it to a server
    URL only (the embedded engines are one process on one machine)."""
    cluster = {
        "qdrant_shard_number": 3,
        "qdrant_replication_factor": 2,
        "qdrant_write_consistency_factor": 1,
        "qdrant_on_disk_vectors": True,
        "qdrant_quantization": "int8",
    }

    # No Qdrant server here: the server connection is made in local mode, layout and all.
    def connect(cls, embedder, *, layout=None, **_):
        return cls.local(embedder, layout=layout)

    monkeypatch.setattr(ClientStore, "connect", classmethod(connect))
    server = load_store(Settings(qdrant_url="http://qdrant-1:6333", **cluster), embedder)
    try:
        assert server.layout == ServerCollection(3, 2, 1, on_disk_vectors=True, quantization="int8")
        params = server.client.get_collection("audiorag").config.params
        assert all(params.vectors[name].on_disk for name in VECTOR_NAMES)
    finally:
        server.close()

    embedded = load_store(Settings(data_dir=tmp_path, store_backend="local", **cluster), embedder)
    try:
        assert embedded.layout is None
        params = embedded.client.get_collection("audiorag").config.params
        assert all(not params.vectors[name].on_disk for name in VECTOR_NAMES)
    finally:
        embedded.close()
