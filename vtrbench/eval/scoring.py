"""Where the raw scores come from: a :class:`Scorer` gives the raw similarity of query rows with the
whole gallery, chunk by chunk.

Embeddings of a factorised head (:class:`EmbeddingScorer`: one matmul per chunk) or the block scorer
of a pairwise head (:class:`PairScorer`: each chunk scored in caption x video blocks, so the head's
memory is that of one block). Everything downstream sees only ``(chunk, gallery)`` raw scores.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vtrbench.eval.blocks import chunks


class Scorer:
    """Raw similarity of query rows with the whole gallery, computed on demand, chunk by chunk.

    The factorised form (:class:`EmbeddingScorer`) is one matmul per chunk; a pairwise head
    (:class:`PairScorer`) scores the chunk in blocks. Everything downstream (normalisers,
    post-processing, tie counts) sees only ``rows(slice) -> (n, M)``.
    """

    n_queries: int
    n_gallery: int
    device: torch.device
    dtype: torch.dtype = torch.float32  # of the scores ``rows`` returns

    def rows(self, rows: slice) -> torch.Tensor:
        """``(n, M)`` raw scores of query rows ``rows`` with all ``M`` gallery items."""
        raise NotImplementedError

    def rows_into(self, rows: slice, out: torch.Tensor) -> torch.Tensor:
        """:meth:`rows` written into ``out`` (a contiguous ``(n, M)`` view of the score matrix)."""
        out.copy_(self.rows(rows))
        return out

    def columns(self, cols: slice) -> torch.Tensor:
        """``(n, Nq)`` raw scores of gallery items ``cols`` with every query (the transposed side).

        Only used when the score matrix can be neither held nor stored (:class:`ScoreMatrix`).
        """
        raise NotImplementedError


class EmbeddingScorer(Scorer):
    """``queries @ gallery.T``: the fast path of factorised heads."""

    def __init__(self, queries: torch.Tensor, gallery: torch.Tensor) -> None:
        self.queries, self.gallery = queries, gallery
        self.n_queries, self.n_gallery = queries.shape[0], gallery.shape[0]
        self.device = queries.device
        self.dtype = torch.promote_types(queries.dtype, gallery.dtype)

    def rows(self, rows: slice) -> torch.Tensor:
        return self.queries[rows] @ self.gallery.T

    def rows_into(self, rows: slice, out: torch.Tensor) -> torch.Tensor:
        if out.dtype != self.dtype or not out.is_contiguous():
            return out.copy_(self.queries[rows] @ self.gallery.T)
        # straight into the matrix: no chunk-sized temporary and copy
        return torch.matmul(self.queries[rows], self.gallery.T, out=out)

    def columns(self, cols: slice) -> torch.Tensor:
        return self.gallery[cols] @ self.queries.T


class PairScorer(Scorer):
    """Scores of a pairwise head, computed in ``(captions, videos)`` blocks of at most ``block``.

    ``score(text_state, video_state) -> (Bq, Bv)`` scores caption states against video
    states (see :class:`vtrbench.heads.base.PairwiseHead`). With ``queries="videos"`` the
    queries are the videos (v2t, or a bank of videos) and each row block is the transpose of
    a caption x video block. Only one block's intermediates are alive at a time, so the
    head's memory is O(block) for any gallery; the ``(n, M)`` row chunk it returns is the
    same as for factorised heads.
    """

    def __init__(
        self,
        score: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor],
        text_state: dict[str, torch.Tensor],
        video_state: dict[str, torch.Tensor],
        *,
        block: tuple[int, int],
        queries: str = "captions",
    ) -> None:
        self.score, self.text, self.video = score, text_state, video_state
        self.block = block
        self.transposed = queries == "videos"
        n_t, n_v = _state_len(text_state), _state_len(video_state)
        self.n_queries, self.n_gallery = (n_v, n_t) if self.transposed else (n_t, n_v)
        self.device = next(iter(text_state.values())).device

    def rows(self, rows: slice) -> torch.Tensor:
        return self._blocks(rows, self.transposed)

    def columns(self, cols: slice) -> torch.Tensor:
        return self._blocks(cols, not self.transposed)

    def _blocks(self, rows: slice, videos_first: bool) -> torch.Tensor:
        n = rows.stop - rows.start
        n_other = _state_len(self.text if videos_first else self.video)
        out = torch.empty(n, n_other, dtype=torch.float32, device=self.device)
        q_step, g_step = (self.block[1], self.block[0]) if videos_first else self.block
        for q in chunks(n, q_step):
            q_rows = slice(rows.start + q.start, rows.start + q.stop)
            q_state = _slice(self.video if videos_first else self.text, q_rows)
            for g in chunks(n_other, g_step):
                g_state = _slice(self.text if videos_first else self.video, g)
                if videos_first:
                    out[q, g] = self.score(g_state, q_state).T
                else:
                    out[q, g] = self.score(q_state, g_state)
        return out


def _state_len(state: dict[str, torch.Tensor]) -> int:
    return int(next(iter(state.values())).shape[0])


def _slice(state: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in state.items()}
