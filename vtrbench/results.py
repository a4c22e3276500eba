"""The result file: one JSON per (run, seed). ``report`` reads nothing else.

The schema is documented key by key in results/README.md. Writes are atomic
(temporary file + rename), so a crash never leaves a half-written result that a
later ``report`` would read.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from vtrbench.errors import VtrbenchError
from vtrbench.tiecounts import TOPK, counts_from_json, expected_ranks, expected_recall, median_rank

# Schema 2 (this vtrbench writes it) adds per_query (the tie counts every metric is computed from)
# and topk (and topk_scores, optional); schema 1 files (no per_query/topk) stay readable.
SCHEMA = 2
READABLE_SCHEMAS = (1, 2)
# raw/dsl/qbnorm and the hubness family of vtrbench.postprocess: "-test" reads all test queries
# at once (transductive), "-bank" a bank of training queries (inductive)
POSTPROCESSING = (
    "raw",
    "dsl",
    "qbnorm",
    "is-bank",
    "is-test",
    "csls-bank",
    "csls-test",
    "dsl-bank",
    "sinkhorn",
    "emcl",
)
TRANSDUCTIVE = {
    "raw": False,
    "dsl": True,
    "qbnorm": False,
    "is-bank": False,
    "is-test": True,
    "csls-bank": False,
    "csls-test": True,
    "dsl-bank": False,
    "sinkhorn": True,
    "emcl": True,  # the EM step reads every test caption and video at once
}
# the blocks of a report unless --post says otherwise: the classic three stay readable; the others are
# one --post away, and the decomposition section compares the inference axis over all of them
REPORT_POSTS = ("raw", "dsl", "qbnorm")
DIRECTIONS = ("t2v", "v2t")
METRICS = ("R@1", "R@5", "R@10", "R@50", "MdR", "MnR")
HIGHER_IS_BETTER = {
    "R@1": True,
    "R@5": True,
    "R@10": True,
    "R@50": True,
    "MdR": False,
    "MnR": False,
    "RSum": True,
}


def run_id(dataset: str, head: str, loss: str, config_hash: str, seed: int) -> str:
    return f"{dataset}.{head}.{loss}.{config_hash[:8]}.s{seed}"


def result_path(results_dir: Path, dataset: str, rid: str) -> Path:
    """``results_dir/dataset/rid.json``, which must stay inside ``results_dir``.

    Registered names are plain identifiers (vtrbench.registry.NAME_PATTERN), but the dataset name
    comes from the cache and a run id from names: a ``/``, ``..`` or an absolute part would put a
    result elsewhere, so the resolved path is checked here, where every result path is made.
    """
    for what, part in (("dataset name", dataset), ("run id", rid)):
        if (
            not isinstance(part, str)
            or not part
            or part in (".", "..")
            or any(c in part for c in ("/", "\\", "\x00"))
            or part.startswith(".")
        ):
            raise VtrbenchError(f"{what} {part!r} cannot name a result file (no '/', '..' or leading '.')")
    root = Path(results_dir)
    path = root / dataset / f"{rid}.json"
    # the folder is resolved, not the file: a link in the file's place is replaced (os.replace), its
    # target is never written
    try:
        path.parent.resolve().relative_to(root.resolve())
    except ValueError:  # the dataset folder is a link pointing elsewhere
        raise VtrbenchError(f"result {path} would be written outside --results {root}") from None
    return path


def _umask_now() -> int | None:
    """The process's umask, read without changing it: Linux's /proc/self/status ``Umask:`` line
    (``os.umask`` can only be read by setting it, and a thread creating a file in between would get
    the temporary value). None where there is no such line."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _umask_at_import() -> int:
    # the fallback off Linux: read once, while importing (before vtrbench starts any thread)
    value = os.umask(0o022)
    os.umask(value)
    return value


_UMASK_AT_IMPORT = _umask_at_import() if _umask_now() is None else 0o022


def new_file_mode() -> int:
    """The permission bits a plain ``open(path, "w")`` gives a new file: 0o666 minus the umask
    (``-rw-r--r--`` under umask 022, ``-rw-------`` under 077)."""
    umask = _umask_now()
    return 0o666 & ~(_UMASK_AT_IMPORT if umask is None else umask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    The file gets the mode a plain ``open`` gives a new file under the process's umask (mkstemp's
    temporary file is 0600, which would leave results and reports unreadable to the group), also
    when it replaces an older file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            try:
                os.fchmod(f.fileno(), new_file_mode())
            except (AttributeError, OSError):  # no fchmod (Windows) or a file system without modes
                pass
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text twin of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write a result dict as JSON atomically (a crash never leaves a half-written file).

    Only what :func:`read_result` accepts is written: the same schema check runs first, and a value
    JSON cannot hold (a tensor, NaN) is refused too, with nothing written.
    """
    problem = _schema_problem(result)
    if problem is not None:
        raise VtrbenchError(f"not writing {path}: {problem} (read_result would refuse it)")
    try:
        text = json.dumps(result, indent=1, sort_keys=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:  # a tensor, NaN/inf, a circular reference
        raise VtrbenchError(f"not writing {path}: the result is not plain JSON data ({e})") from None
    atomic_write_text(path, text + "\n")


def _refuse_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity by default; a result holding them is damaged, not a measurement.
    raise ValueError(f"non-finite number {name}")


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _schema_problem(data: Any) -> str | None:
    """What makes ``data`` not a readable result (schema 1 or 2), in a few words; None when it is one."""
    if not isinstance(data, dict):
        return f"not a vtrbench result file (a JSON {type(data).__name__}, not an object)"
    if "run_id" not in data or "metrics" not in data:
        return "not a vtrbench result file (no run_id/metrics)"
    schema = data.get("schema")
    if not _int(schema) or schema not in READABLE_SCHEMAS:
        readable = " and ".join(map(str, READABLE_SCHEMAS))
        return f"result schema {schema!r}, this vtrbench reads {readable}"
    for key in ("run_id", "config_hash"):
        if not isinstance(data.get(key), str) or not data.get(key):
            return f"{key} must be a non-empty string, got {data.get(key)!r}"
    for key in ("head", "loss", "label", "dataset"):
        if key in data and not isinstance(data[key], str):
            return f"{key} must be a string, got {data[key]!r}"
    seed = data.get("seed")
    # A seed given as a string or left out would make the same run count as another seed in a report.
    if not isinstance(seed, int) or isinstance(seed, bool):
        return f"seed must be an integer, got {seed!r}"
    for key in ("cache", "protocol", "head_options", "loss_options", "transductive"):
        if key in data and data[key] is not None and not isinstance(data[key], dict):
            return f"{key} must be an object, got {type(data[key]).__name__}"
    metrics = data["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        return "metrics must be a non-empty object {post: {direction: {metric: value}}}"
    for post, per_post in metrics.items():
        if post not in POSTPROCESSING:
            return f"unknown post-processing {post!r} in metrics (known: {', '.join(POSTPROCESSING)})"
        if not isinstance(per_post, dict):
            return f"metrics.{post} must be an object"
        for direction in DIRECTIONS:
            values = per_post.get(direction)
            if not isinstance(values, dict):
                return f"metrics.{post}.{direction} must be an object of metrics"
            for name, value in values.items():
                if value is not None and not _finite(value):
                    return f"metrics.{post}.{direction}.{name} is {value!r}, not a finite number"
        rsum = per_post.get("RSum")
        if rsum is not None and not _finite(rsum):
            return f"metrics.{post}.RSum is {rsum!r}, not a finite number"
    ranks = data.get("per_query_ranks")
    if ranks is not None:
        if not isinstance(ranks, dict):
            return "per_query_ranks must be an object {post: {direction: [rank, ...]}}"
        for post, per_post in ranks.items():
            if not isinstance(per_post, dict):
                return f"per_query_ranks.{post} must be an object"
            for direction, values in per_post.items():
                if not isinstance(values, list) or not all(_finite(v) and v >= 1 for v in values):
                    return f"per_query_ranks.{post}.{direction} must be a list of finite ranks >= 1"
    if schema >= 2:
        return _per_query_problem(data)
    return None


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def gallery_sizes(data: dict[str, Any]) -> tuple[int, int, dict[str, int]]:
    """``(n_queries, n_gallery, {direction: items each query is ranked among})`` of a result.

    t2v ranks every caption among the ``n_gallery`` test videos; v2t ranks every video among the
    ``n_gallery`` caption groups (``clip4clip``) or among the ``n_queries`` captions (``any-caption``).
    """
    protocol = data.get("protocol") or {}
    n_q, n_v = protocol.get("n_queries"), protocol.get("n_gallery")
    if not (_int(n_q) and _int(n_v) and n_q >= 1 and n_v >= 1):
        raise ValueError(f"protocol.n_queries/n_gallery must be integers >= 1, got {n_q!r}/{n_v!r}")
    v2t = n_q if protocol.get("v2t_multi_caption") == "any-caption" else n_v
    return n_q, n_v, {"t2v": n_v, "v2t": v2t}


def _metrics_disagree(stored: dict[str, Any], counts: Any, what: str) -> str | None:
    """The stored metrics must be the ones their per-query counts give (up to float rounding)."""
    ranks = expected_ranks(counts)
    want: dict[str, list[float]] = {"MnR": [float(ranks.mean())]}
    # MdR: np.median, or the lower middle value under the clip4clip convention
    want["MdR"] = [median_rank(ranks), median_rank(ranks, lower=True)]
    for name in stored:
        if name.startswith("R@") and name[2:].isdigit():
            want[name] = [float(100.0 * expected_recall(counts, int(name[2:])).mean())]
    for name, options in want.items():
        value = stored.get(name)
        if value is not None and not any(np.isclose(value, w, rtol=1e-9, atol=1e-9) for w in options):
            return f"{what}.{name} is {value!r}, but its per_query counts give {options[0]!r}"
    return None


def _per_query_problem(data: dict[str, Any]) -> str | None:
    """Shape and type checks of schema 2's ``per_query`` and ``topk`` (see results/README.md)."""
    try:
        n_q, n_v, ranked_among = gallery_sizes(data)
    except ValueError as e:
        return str(e)
    n_queries = {"t2v": n_q, "v2t": n_v}
    topk_gallery = {"t2v": n_v, "v2t": n_q}  # top-k lists hold test videos (t2v) / test captions (v2t)
    for key in ("per_query", "topk"):
        block = data.get(key)
        if not isinstance(block, dict) or set(block) != set(data["metrics"]):
            return f"{key} must be an object with one entry per post-processing in metrics"
        for post, per_post in block.items():
            if not isinstance(per_post, dict) or set(per_post) != set(DIRECTIONS):
                return f"{key}.{post} must be an object with keys t2v and v2t"
    for post, per_post in data["per_query"].items():
        for direction in DIRECTIONS:
            what = f"per_query.{post}.{direction}"
            try:
                counts = counts_from_json(per_post[direction], gallery=ranked_among[direction], what=what)
            except VtrbenchError as e:
                return str(e)
            if len(counts.higher) != n_queries[direction]:
                return f"{what} holds {len(counts.higher)} queries, protocol says {n_queries[direction]}"
            stored = data["metrics"][post][direction]
            problem = _metrics_disagree(stored, counts, f"metrics.{post}.{direction}")
            if problem is not None:
                return problem
    for post, per_post in data["topk"].items():
        for direction in DIRECTIONS:
            what = f"topk.{post}.{direction}"
            rows, size = per_post[direction], topk_gallery[direction]
            if not isinstance(rows, list) or len(rows) != n_queries[direction]:
                return f"{what} must be a list of {n_queries[direction]} lists (one per query)"
            k = min(TOPK, size)
            for i, row in enumerate(rows):
                if (
                    not isinstance(row, list)
                    or len(row) != k
                    or not all(_int(v) and 0 <= v < size for v in row)
                    or len(set(row)) != k
                ):
                    return f"{what}[{i}] must be {k} distinct gallery indices in [0, {size})"
    return _topk_contradiction(data, ranked_among) or _topk_scores_problem(data)


def _topk_contradiction(data: dict[str, Any], ranked_among: dict[str, int]) -> str | None:
    """``topk`` must agree with ``per_query``'s counts (issue 28). A file holds no ground truth, but
    the counts give some: a query ranked first with no tie (``higher = tied = 0``) under any
    post-processing has a correct item at ``topk[0]`` (t2v: caption i's video; v2t: a caption of
    video j). With that ground truth, under every post-processing (lists ordered by exact score,
    counts taken with the tie band, which only moves items between "higher" and "tied"):

    - no correct item sits at a position ``< higher`` (at least ``higher`` wrong items score above
      every correct one);
    - t2v (one correct video): its video sits at a position ``<= higher + tied`` (only items scoring
      above it, or equal with a lower index, come first, and each is counted higher or tied), so it
      is in the list when ``higher + tied < k``;
    - the ground truths given by different post-processings and by both directions agree.
    """
    video_of: dict[int, tuple[int, str]] = {}  # t2v caption -> (its video, where that was read)
    counts = {
        (post, d): counts_from_json(data["per_query"][post][d], gallery=ranked_among[d])
        for post in data["per_query"]
        for d in DIRECTIONS
    }
    for (post, d), c in counts.items():
        firsts = np.flatnonzero((c.higher == 0) & (c.tied == 0))
        for q in firsts.tolist():
            top = data["topk"][post][d][q][0]
            caption, video = (q, top) if d == "t2v" else (top, q)
            where = f"topk.{post}.{d}[{q}][0]"
            known = video_of.setdefault(caption, (video, where))
            if known[0] != video:
                return (
                    f"{where} makes caption {caption} one of video {video}'s, but {known[1]} one of "
                    f"video {known[0]}'s (per_query ranks both first with no tie)"
                )
    for (post, d), c in counts.items():
        for q, row in enumerate(data["topk"][post][d]):
            h, t = int(c.higher[q]), int(c.tied[q])
            if d == "t2v":
                correct = [p for p, v in enumerate(row) if q in video_of and v == video_of[q][0]]
                late = correct[0] > h + t if correct else h + t < len(row)
                if q in video_of and late:
                    video, where = video_of[q]
                    at = f"at position {correct[0] + 1}" if correct else "not at all"
                    return (
                        f"topk.{post}.t2v[{q}] holds caption {q}'s video {video} ({where}) {at}, but "
                        f"per_query.{post}.t2v puts it within the first {h + t + 1}"
                    )
            else:
                correct = [p for p, cap in enumerate(row) if cap in video_of and video_of[cap][0] == q]
            if correct and correct[0] < h:
                return (
                    f"topk.{post}.{d}[{q}] has a correct item at position {correct[0] + 1}, but "
                    f"per_query.{post}.{d} counts {h} wrong items above every correct one"
                )
    return None


def _topk_scores_problem(data: dict[str, Any]) -> str | None:
    """``topk_scores`` (optional: files written before it have none; null = not recorded) must
    match ``topk`` list by list, hold finite numbers and run best first (non-increasing)."""
    block = data.get("topk_scores")
    if block is None:
        return None
    if not isinstance(block, dict) or set(block) != set(data["topk"]):
        return "topk_scores must be an object with one entry per post-processing in topk (or null)"
    for post, per_post in block.items():
        if not isinstance(per_post, dict) or set(per_post) != set(DIRECTIONS):
            return f"topk_scores.{post} must be an object with keys t2v and v2t"
        for direction in DIRECTIONS:
            what = f"topk_scores.{post}.{direction}"
            rows, indices = per_post[direction], data["topk"][post][direction]
            if not isinstance(rows, list) or len(rows) != len(indices):
                return f"{what} must be a list of {len(indices)} lists (one per query, as topk)"
            for i, row in enumerate(rows):
                k = len(indices[i])
                numbers = isinstance(row, list) and len(row) == k
                numbers = numbers and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row
                )
                if not numbers:
                    return f"{what}[{i}] must be {k} finite numbers (the scores of topk)"
                if any(b > a for a, b in zip(row, row[1:], strict=False)):
                    return f"{what}[{i}] must run best first (non-increasing), as topk"
    return None


def read_result(path: Path) -> dict[str, Any]:
    """Read and validate one result file.

    Every way a file can be unusable (missing, a folder, unreadable, not UTF-8, truncated or invalid
    JSON, nested too deeply, NaN/inf, wrong schema or types) raises one VtrbenchError naming the file,
    so callers (``report``, and train/eval deciding that a result must be redone) need one ``except``.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
    except FileNotFoundError:
        raise VtrbenchError(f"result file not found: {path}") from None
    except IsADirectoryError:
        raise VtrbenchError(f"{path}: is a folder, not a result file") from None
    except UnicodeDecodeError as e:
        raise VtrbenchError(f"{path}: not a result JSON (not UTF-8 text: byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise VtrbenchError(f"{path}: not a valid result JSON ({e})") from None
    except RecursionError:
        raise VtrbenchError(f"{path}: not a result JSON (nested too deeply)") from None
    except ValueError as e:  # NaN/Infinity via _refuse_constant, or too long an integer
        raise VtrbenchError(f"{path}: not a valid result JSON ({e})") from None
    except OSError as e:
        raise VtrbenchError(f"{path}: cannot read the result file ({e.strerror or e})") from None
    problem = _schema_problem(data)
    if problem is not None:
        raise VtrbenchError(f"{path}: {problem}")
    data["_path"] = str(path)
    return data


def discover(paths: Iterable[Path]) -> list[Path]:
    """Result files under the given files/folders (recursively), sorted, hidden temp files skipped."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            # A folder named x.json inside a results folder is not a result; hidden files are temporaries.
            found.extend(q for q in p.rglob("*.json") if not q.name.startswith(".") and q.is_file())
        elif p.is_file():
            found.append(p)
        elif p.exists():
            raise VtrbenchError(f"{p}: not a regular file or folder")
        else:
            raise VtrbenchError(f"no such file or folder: {p}")
    return sorted(set(found))
