"""Measuring retrieval and generation quality on held-out catalogs."""
