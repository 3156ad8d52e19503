"""The learning-rate schedule both trainers use: linear warm-up, then cosine decay."""

from __future__ import annotations

import math
from collections.abc import Callable


def warmup_cosine(
    total_steps: int, warmup_steps: int, floor: float = 0.0
) -> Callable[[int], float]:
    """LR multiplier for ``LambdaLR``: linear warm-up over ``warmup_steps`` (at least 1), then
    cosine decay to ``floor`` of the peak at ``total_steps``, and ``floor`` after."""
    warmup = max(1, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor
