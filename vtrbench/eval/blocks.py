"""How evaluation work is cut, and the rounding that makes results independent of the cut.

Shared by the scorers, the score matrix and the post-processings (sideways in ``eval/``).
"""

from __future__ import annotations

import torch

# float64 unit roundoff: the accumulation bound of a float64 normaliser (normaliser_bound)
_U64 = 2.0**-53


def chunks(n: int, size: int) -> list[slice]:
    """``[0, n)`` cut into consecutive slices of at most ``size``."""
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def rounded(x: torch.Tensor) -> torch.Tensor:
    """float64 accumulation, then float32 rounding: the value no longer depends on the summation order
    (hence on the chunks), and gallery items with equal values get equal normalisers."""
    return x.to(torch.float32).to(torch.float64)


def rounded_for(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A normaliser of scores of ``dtype``: float32-rounded (:func:`rounded`) below float64; kept in
    float64 for float64 scores, whose band would otherwise be that of float32 (issue 27)."""
    return x if dtype == torch.float64 else rounded(x)


def normaliser_bound(x: torch.Tensor, dtype: torch.dtype, n_terms: int) -> torch.Tensor:
    """How far a normaliser :func:`rounded_for` gave can move with the summation order, elementwise.

    Below float64: one float32 ulp of ``|x|`` (two float64 sums a few float64 ulps apart round to the
    same float32 value or to neighbours). float64: the accumulation bound of a logsumexp of
    ``n_terms`` terms summed in chunks, ``4 n_terms u (1 + |x|)`` with ``u = 2^-53`` (each exp and
    addition costs ``u`` relative on the sum, the log and the max shift ``u |x|``, each chunk's
    logaddexp two more; at most ``n_terms`` chunks).
    """
    if dtype == torch.float64:
        return x.abs().add_(1.0).mul_(4.0 * max(n_terms, 1) * _U64)
    _, exponent = torch.frexp(x.to(torch.float32))
    # |x| in [2^(e-1), 2^e): a float32 ulp is 2^(e-24); subnormals and 0 get the smallest normal's
    return torch.ldexp(torch.ones_like(x), (exponent.to(torch.float64) - 24).clamp_(min=-149))
