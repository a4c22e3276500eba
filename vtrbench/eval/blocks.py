"""How evaluation work is cut, and the rounding that makes results independent of the cut.

Shared by the scorers, the score matrix and the post-processings (sideways in ``eval/``).
"""

from __future__ import annotations

import torch


def chunks(n: int, size: int) -> list[slice]:
    """``[0, n)`` cut into consecutive slices of at most ``size``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def rounded(x: torch.Tensor) -> torch.Tensor:
    """float64 accumulation, then float32 rounding: the value no longer depends on the summation order
    (hence on the chunks), and gallery items with equal values get equal normalisers."""
    return x.to(torch.float32).to(torch.float64)
