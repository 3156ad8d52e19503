"""Errors the orchestration reports to users: each message says what to change."""

from __future__ import annotations


class GenerationError(ValueError):
    """A generation request that cannot be rendered as asked (bad input, unlicensed seed…)."""
