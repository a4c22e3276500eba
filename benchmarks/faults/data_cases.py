"""Faults in annotation files of every dataset format.

Each case copies a small valid annotation folder (built once from the real public files
in ``shared/data/annotations`` when they are there, else from ``tests/fixtures/datasets``)
into its own folder, damages one file on purpose and runs ``vtrbench datasets describe``
in-process; a few run ``vtrbench extract``, which must stop before decoding any video.
Damage: nested, truncated, non-UTF-8, wrong-type, missing-field and empty files, captions
with NUL or other control characters, ids that reach outside ``--video-root``, a folder
or a device where a file should be, and mutated MSVD pickles. Valid variants (byte-order
marks, CRLF, every pickle protocol, videos shared between splits) must be read right.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks.faults.core import (
    TINY_MODEL,
    Case,
    CliRun,
    Context,
    Outcome,
    expect_error,
    expect_ok,
    run_cli,
    synthetic_dataset,
)

AREA = "data"
REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "datasets"
TRAVERSAL = "../../etc/shadow"


def real_annotations() -> Path | None:
    """The real public annotation files: ``../shared`` beside the repository, else /work/shared."""
    for root in (REPO.parent / "shared", Path("/work/shared")):
        folder = root / "data" / "annotations"
        if folder.is_dir():
            return folder
    return None


# ---------------------------------------------------------------- valid baselines (made once per run)


def _lines(path: Path, n: int) -> list[str]:
    with path.open(encoding="utf-8-sig") as f:
        return [line.rstrip("\r\n") for _, line in zip(range(n), f, strict=False)]


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data), encoding="utf-8")


def _msvd(dest: Path, real: Path | None) -> None:
    if real is None or not (real / "msvd").is_dir():
        shutil.copytree(FIXTURES / "msvd", dest, dirs_exist_ok=True)
        return
    src = real / "msvd"
    captions = json.loads((src / "captions_msvd.json").read_text(encoding="utf-8"))
    keep: dict[str, list[str]] = {}
    for name, n in (("train_list.txt", 3), ("val_list.txt", 2), ("test_list.txt", 3)):
        ids = _lines(src / name, n)
        (dest / name).write_text("\n".join(ids) + "\n", encoding="utf-8")
        keep.update({v: captions[v][:3] for v in ids})
    _write_json(dest / "captions_msvd.json", keep)


def _msvd_pickle(dest: Path, real: Path | None) -> None:
    # CLIP4Clip's raw-captions.pkl: id -> list of token lists, written by Python 3's pickle.
    _msvd(dest, real)
    captions = json.loads((dest / "captions_msvd.json").read_text(encoding="utf-8"))
    (dest / "captions_msvd.json").unlink()
    tokens = {v: [c.split() for c in caps] for v, caps in captions.items()}
    (dest / "raw-captions.pkl").write_bytes(pickle.dumps(tokens, protocol=4))


def _msrvtt(dest: Path, real: Path | None) -> None:
    # The real MSRVTT_data.json is not among the shared files: the captions and train
    # lists come from the fixture, the 1k-A test rows from the real CSV when present.
    shutil.copytree(FIXTURES / "msrvtt", dest, dirs_exist_ok=True)
    if real is not None and (real / "msrvtt" / "MSRVTT_JSFUSION_test.csv").is_file():
        rows = _lines(real / "msrvtt" / "MSRVTT_JSFUSION_test.csv", 6)
        (dest / "MSRVTT_JSFUSION_test.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def _lsmdc(dest: Path, real: Path | None) -> None:
    shutil.copytree(FIXTURES / "lsmdc", dest, dirs_exist_ok=True)
    name = "LSMDC16_challenge_1000_publictect.csv"
    if real is not None and (real / "lsmdc" / name).is_file():
        (dest / name).write_text("\n".join(_lines(real / "lsmdc" / name, 5)) + "\n", encoding="utf-8")


def _didemo(dest: Path, real: Path | None) -> None:
    if real is None or not (real / "didemo").is_dir():
        shutil.copytree(FIXTURES / "didemo", dest, dirs_exist_ok=True)
        return
    src = real / "didemo"
    for split in ("val", "test"):
        ids = _lines(src / f"{split}_list.txt", 3)
        (dest / f"{split}_list.txt").write_text("\n".join(ids) + "\n", encoding="utf-8")
        data = json.loads((src / f"{split}_data.json").read_text(encoding="utf-8"))
        _write_json(dest / f"{split}_data.json", [m for m in data if m["video"] in set(ids)])


def _activitynet(dest: Path, real: Path | None) -> None:
    if real is None or not (real / "activitynet").is_dir():
        shutil.copytree(FIXTURES / "activitynet", dest, dirs_exist_ok=True)
        return
    src = real / "activitynet"
    for ids_name, data_name in (("train_ids.json", "train.json"), ("val_ids.json", "val_1.json")):
        data = json.loads((src / data_name).read_text(encoding="utf-8"))
        ids = [v for v in json.loads((src / ids_name).read_text(encoding="utf-8")) if v in data][:3]
        _write_json(dest / ids_name, ids)
        _write_json(dest / data_name, {v: data[v] for v in ids})


def _custom_csv(dest: Path, real: Path | None) -> None:
    shutil.copy(FIXTURES / "custom" / "split.csv", dest / "ann.csv")


def _custom_jsonl(dest: Path, real: Path | None) -> None:
    shutil.copy(FIXTURES / "custom" / "nosplit.jsonl", dest / "ann.jsonl")


BASELINES: dict[str, Callable[[Path, Path | None], None]] = {
    "msrvtt": _msrvtt,
    "msvd": _msvd,
    "msvd-pkl": _msvd_pickle,
    "lsmdc": _lsmdc,
    "didemo": _didemo,
    "activitynet": _activitynet,
    "custom-csv": _custom_csv,
    "custom-jsonl": _custom_jsonl,
}


def baseline(ctx: Context, kind: str) -> Path:
    """A read-only valid annotation folder of ``kind`` (a key of BASELINES or ``synthetic``)."""

    def make(folder: Path) -> Path:
        dest = folder / "ann"
        dest.mkdir(parents=True, exist_ok=True)
        if kind == "synthetic":
            src = synthetic_dataset(ctx)
            for name in ("meta.json", "captions.jsonl"):
                shutil.copy(src / name, dest / name)
        else:
            BASELINES[kind](dest, real_annotations())
        return dest

    return ctx.once(f"data-baseline-{kind}", make)


def dataset_of(kind: str) -> str:
    return kind.split("-")[0]


def copy_baseline(tmp: Path, ctx: Context, kind: str) -> Path:
    dest = tmp / "ann"
    shutil.copytree(baseline(ctx, kind), dest)
    return dest


def annotations_arg(folder: Path, kind: str) -> Path:
    """What --annotations gets: the folder, or the custom dataset's one file."""
    if kind == "custom-csv":
        return folder / "ann.csv"
    if kind == "custom-jsonl":
        return folder / "ann.jsonl"
    return folder


def describe(folder: Path, kind: str, *extra: Any) -> CliRun:
    return run_cli(
        ["datasets", "describe", dataset_of(kind), "--annotations", annotations_arg(folder, kind), *extra]
    )


def describe_json(run: CliRun) -> dict[str, Any] | None:
    try:
        return json.loads(run.out)
    except ValueError:
        return None


# ---------------------------------------------------------------- the files of each format and their captions

# kind -> [(file, format)]; format says which mutations apply.
FILES: dict[str, list[tuple[str, str]]] = {
    "msrvtt": [
        ("MSRVTT_data.json", "json"),
        ("MSRVTT_JSFUSION_test.csv", "csv"),
        ("MSRVTT_train.9k.csv", "csv"),
    ],
    "msvd": [("captions_msvd.json", "json"), ("test_list.txt", "ids"), ("train_list.txt", "ids")],
    "msvd-pkl": [("raw-captions.pkl", "pkl")],
    "lsmdc": [("LSMDC16_challenge_1000_publictect.csv", "tsv"), ("LSMDC16_annos_training.csv", "tsv")],
    "didemo": [("test_data.json", "json"), ("test_list.txt", "ids"), ("val_data.json", "json")],
    "activitynet": [("val_1.json", "json"), ("val_ids.json", "json"), ("train.json", "json")],
    "custom-csv": [("ann.csv", "csv")],
    "custom-jsonl": [("ann.jsonl", "jsonl")],
    "synthetic": [("meta.json", "json"), ("captions.jsonl", "jsonl")],
}


def _first_key(d: dict[str, Any]) -> str:
    return next(iter(d))


def _set_caption_json(kind: str, data: Any, value: Any) -> Any:
    """Put ``value`` where the first caption of the caption file of ``kind`` is."""
    if kind == "msrvtt":
        data["sentences"][0]["caption"] = value
    elif kind == "msvd":
        data[_first_key(data)][0] = value
    elif kind == "didemo":
        data[0]["description"] = value
    elif kind == "activitynet":
        data[_first_key(data)]["sentences"][0] = value
    else:
        raise ValueError(kind)
    return data


CAPTION_JSON = {"msrvtt": "MSRVTT_data.json", "msvd": "captions_msvd.json", "didemo": "test_data.json"}
CAPTION_JSON["activitynet"] = "val_1.json"


def _edit_json(path: Path, change: Callable[[Any], Any]) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(change(data)), encoding="utf-8")


def _edit_jsonl_first(path: Path, key: str, value: Any) -> None:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    first = json.loads(lines[0])
    if value is _DELETE:
        first.pop(key, None)
    elif callable(value):
        first[key] = value(first[key])
    else:
        first[key] = value
    lines[0] = json.dumps(first)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


_DELETE = object()


def _synth_rename_first_video(folder: Path, new_id: str) -> None:
    """Rename the first synthetic video in meta.json and in its captions alike (the id is the fault)."""
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    old_id = meta["videos"][0]["id"]
    meta["videos"][0]["id"] = new_id
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    lines = []
    for line in (folder / "captions.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        if obj["video"] == old_id:
            obj["video"] = new_id
        lines.append(json.dumps(obj))
    (folder / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _edit_csv_cell(path: Path, column: str, value: str, tab: bool = False) -> None:
    """Replace ``column`` of the first data row (LSMDC: field 0 = id, 5 = sentence; no header)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if tab:
        fields = lines[0].split("\t")
        fields[int(column)] = value
        lines[0] = "\t".join(fields)
    else:
        header = lines[0].split(",")
        cells = _split_csv(lines[1])
        cells[header.index(column)] = value
        lines[1] = ",".join(_quote(c) for c in cells)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")


def _split_csv(line: str) -> list[str]:
    import csv
    import io

    return next(csv.reader(io.StringIO(line)))


def _quote(cell: str) -> str:
    return '"' + cell.replace('"', '""') + '"' if any(c in cell for c in ',"\n\r') else cell


# ---------------------------------------------------------------- case builders


def _describe_error(
    kind: str, damage: Callable[[Path], None], *mentions: str
) -> Callable[[Path, Context], Outcome]:
    """A case: damage a copy of ``kind``'s baseline, describe must fail naming ``mentions``."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = copy_baseline(tmp, ctx, kind)
        damage(folder)
        return expect_error(describe(folder, kind), *mentions)

    return run


def _describe_error_or_valid(
    kind: str, damage: Callable[[Path], None], mention: str
) -> Callable[..., Outcome]:
    """For damage that may leave a valid file (a flipped byte inside a caption): a clear error
    naming the file, or a successful read whose every split still holds captions."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = copy_baseline(tmp, ctx, kind)
        damage(folder)
        r = describe(folder, kind, "--json")
        if r.code == 0 and not r.traceback:
            info = describe_json(r)
            ok = (
                info is not None
                and info["splits"]
                and all(s["captions"] > 0 for s in info["splits"].values())
            )
            return Outcome("handled", "still a valid file") if ok else Outcome("silently_wrong", r.out[-200:])
        return expect_error(r, mention)

    return run


def _replace(name: str, content: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(content)


def _generic_cases(kind: str, name: str, fmt: str) -> list[Case]:
    """Damage any file can have: not UTF-8, empty, a folder or a device in its place, truncated."""
    cases = []

    def not_utf8(folder: Path) -> None:
        data = (folder / name).read_bytes()
        cut = len(data) // 2
        (folder / name).write_bytes(data[:cut] + b"\xff\xfe\xfa" + data[cut:])

    def folder_instead(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
        (folder / name / "inside.txt").write_text("x")

    def device(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).symlink_to("/dev/zero")

    def fifo(folder: Path) -> None:
        (folder / name).unlink()
        os.mkfifo(folder / name)

    def huge(folder: Path) -> None:
        # A sparse file: the size is refused from stat, nothing is read.
        with (folder / name).open("r+b") as f:
            f.truncate(600 * 1024**2)

    def broken_link(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).symlink_to(folder / "nowhere.json")

    if fmt != "pkl":
        cases.append(Case(AREA, f"{kind}/{name}/not-utf8", _describe_error(kind, not_utf8, name)))
    cases += [
        Case(AREA, f"{kind}/{name}/empty", _describe_error(kind, _replace(name, b""), name)),
        Case(AREA, f"{kind}/{name}/folder-instead", _describe_error(kind, folder_instead, name)),
        Case(AREA, f"{kind}/{name}/dev-zero", _describe_error(kind, device, name)),
    ]
    if hasattr(os, "mkfifo") and fmt in ("json", "pkl", "csv"):
        cases.append(Case(AREA, f"{kind}/{name}/fifo", _describe_error(kind, fifo, name)))
    if fmt in ("json", "pkl"):
        cases.append(Case(AREA, f"{kind}/{name}/huge-sparse", _describe_error(kind, huge, name)))
        cases.append(Case(AREA, f"{kind}/{name}/broken-link", _describe_error(kind, broken_link, name)))
    if fmt in ("json",):

        def truncate(frac: float) -> Callable[[Path], None]:
            def cut(folder: Path) -> None:
                data = (folder / name).read_bytes()
                (folder / name).write_bytes(data[: int(len(data) * frac)])

            return cut

        for frac in (0.5, 0.97):
            cases.append(
                Case(
                    AREA,
                    f"{kind}/{name}/truncated-{int(frac * 100)}",
                    _describe_error(kind, truncate(frac), name),
                )
            )
        deep = b"[" * 100_000 + b"]" * 100_000
        cases.append(
            Case(AREA, f"{kind}/{name}/nested-100k", _describe_error(kind, _replace(name, deep), name))
        )
        wrong = {"number": b"42", "string": b'"captions"', "null": b"null"}
        for label, content in wrong.items():
            cases.append(
                Case(AREA, f"{kind}/{name}/top-{label}", _describe_error(kind, _replace(name, content), name))
            )
        cases.append(
            Case(AREA, f"{kind}/{name}/huge-int", _describe_error(kind, _replace(name, b"1" * 6000), name))
        )
    return cases


def _json_caption_cases(kind: str) -> list[Case]:
    """Bad captions in the JSON caption file of a standard dataset."""
    name = CAPTION_JSON[kind]
    values: dict[str, Any] = {
        "nul-caption": "a man\x00 walks",
        "bell-caption": "a man \x07walks",
        "surrogate-caption": "a man \ud800 walks",
        "number-caption": 12345,
        "list-caption": ["nested", ["deeper"]],
        "deep-caption": json.loads("[" * 500 + "]" * 500),
    }
    if kind != "didemo" and kind != "activitynet":  # those skip empty descriptions by design
        values["empty-caption"] = "   "
    cases = []
    for label, value in values.items():

        def damage(folder: Path, value: Any = value) -> None:
            _edit_json(folder / name, lambda d: _set_caption_json(kind, d, value))

        cases.append(Case(AREA, f"{kind}/{name}/{label}", _describe_error(kind, damage, name)))

    def duplicate_key(folder: Path) -> None:
        text = (folder / name).read_text(encoding="utf-8")
        if text.lstrip().startswith("{"):  # repeat the first key of the top-level object
            first = json.loads(text)
            key = _first_key(first)
            text = "{" + json.dumps(key) + ": " + json.dumps(first[key]) + ", " + text.lstrip()[1:]
        else:  # a list of objects: repeat a key inside the first one
            text = text.replace('"description":', '"description": "x", "description":', 1)
        (folder / name).write_text(text, encoding="utf-8")

    cases.append(Case(AREA, f"{kind}/{name}/duplicate-key", _describe_error(kind, duplicate_key, name)))
    return cases


def _missing_field_cases() -> list[Case]:
    def drop(kind: str, name: str, change: Callable[[Any], Any]) -> Callable[[Path], None]:
        return lambda folder: _edit_json(folder / name, change)

    def del_key(obj: dict[str, Any], key: str) -> dict[str, Any]:
        obj.pop(key)
        return obj

    specs = [
        ("msrvtt", "MSRVTT_data.json", "no-sentences", lambda d: del_key(d, "sentences")),
        (
            "msrvtt",
            "MSRVTT_data.json",
            "no-video_id",
            lambda d: (del_key(d["sentences"][0], "video_id"), d)[1],
        ),
        ("didemo", "test_data.json", "no-video", lambda d: (del_key(d[0], "video"), d)[1]),
        ("didemo", "test_data.json", "no-description", lambda d: (del_key(d[0], "description"), d)[1]),
        (
            "activitynet",
            "val_1.json",
            "no-sentences",
            lambda d: (del_key(d[_first_key(d)], "sentences"), d)[1],
        ),
        ("activitynet", "val_ids.json", "ids-object", lambda d: {"ids": d}),
        ("activitynet", "val_ids.json", "id-number", lambda d: [7, *d]),
        ("msvd", "captions_msvd.json", "captions-string", lambda d: {k: "one caption" for k in d}),
        ("didemo", "test_data.json", "top-object", lambda d: {"items": d}),
        ("msrvtt", "MSRVTT_data.json", "top-list", lambda d: [d]),
    ]
    cases = [Case(AREA, f"{k}/{n}/{label}", _describe_error(k, drop(k, n, f), n)) for k, n, label, f in specs]
    cases.append(
        Case(
            AREA,
            "synthetic/meta.json/no-videos",
            _describe_error(
                "synthetic", drop("synthetic", "meta.json", lambda d: del_key(d, "videos")), "meta.json"
            ),
        )
    )
    return cases


def _traversal_cases() -> list[Case]:
    """Ids of standard datasets that would open a file outside --video-root."""
    cases = []
    bad_ids = {
        "traversal": TRAVERSAL,
        "absolute": "/etc/shadow",
        "dotdot": "..",
        "subfolder": "sub/video7",
        "name-too-long": "v" * 300,  # ENAMETOOLONG from the existence check
    }
    for label, bad in bad_ids.items():

        def txt(name: str, bad: str = bad) -> Callable[[Path], None]:
            def damage(folder: Path) -> None:
                lines = (folder / name).read_text(encoding="utf-8").splitlines()
                (folder / name).write_text("\n".join([bad, *lines[1:]]) + "\n", encoding="utf-8")

            return damage

        cases.append(
            Case(
                AREA,
                f"msvd/test_list.txt/{label}-id",
                _describe_error("msvd", txt("test_list.txt"), "test_list.txt", "line 1"),
            )
        )
        cases.append(
            Case(
                AREA,
                f"didemo/test_list.txt/{label}-id",
                _describe_error("didemo", txt("test_list.txt"), "test_list.txt", "line 1"),
            )
        )
    csv_targets = [
        ("msrvtt", "MSRVTT_JSFUSION_test.csv", "video_id", False),
        ("msrvtt", "MSRVTT_train.9k.csv", "video_id", False),
        ("lsmdc", "LSMDC16_challenge_1000_publictect.csv", "0", True),
    ]
    for kind, name, column, tab in csv_targets:
        for label, bad in (("traversal", TRAVERSAL), ("absolute", "/etc/shadow")):

            def damage(
                folder: Path, name: str = name, column: str = column, tab: bool = tab, bad: str = bad
            ) -> None:
                _edit_csv_cell(folder / name, column, bad, tab=tab)

            cases.append(Case(AREA, f"{kind}/{name}/{label}-id", _describe_error(kind, damage, name)))

    def anet_ids(folder: Path) -> None:
        _edit_json(folder / "val_ids.json", lambda d: ["v_" + TRAVERSAL, *d])

    def msvd_key(folder: Path) -> None:
        def change(d: dict[str, Any]) -> dict[str, Any]:
            return {TRAVERSAL: ["a cat"], **d}

        _edit_json(folder / "captions_msvd.json", change)
        lines = (folder / "test_list.txt").read_text(encoding="utf-8")
        (folder / "test_list.txt").write_text(TRAVERSAL + "\n" + lines, encoding="utf-8")

    def synth_id(folder: Path) -> None:
        _synth_rename_first_video(folder, TRAVERSAL)

    def msrvtt_json_id(folder: Path) -> None:
        _edit_json(
            folder / "MSRVTT_data.json", lambda d: (d["sentences"][0].update(video_id=TRAVERSAL), d)[1]
        )

    cases += [
        Case(
            AREA,
            "activitynet/val_ids.json/traversal-id",
            _describe_error("activitynet", anet_ids, "val_ids.json"),
        ),
        Case(AREA, "msvd/captions+list/traversal-id", _describe_error("msvd", msvd_key, "msvd")),
        Case(AREA, "synthetic/meta.json/traversal-id", _describe_error("synthetic", synth_id, "meta.json")),
        Case(
            AREA,
            "msrvtt/MSRVTT_data.json/traversal-id",
            _describe_error("msrvtt", msrvtt_json_id, "MSRVTT_data.json"),
        ),
    ]
    return cases


def _text_format_cases() -> list[Case]:
    """CSV, TSV, id lists and JSON Lines: bad cells, rows and lines."""
    cases = []

    def csv_cell(kind: str, name: str, column: str, value: str, tab: bool = False) -> Callable[[Path], None]:
        return lambda folder: _edit_csv_cell(folder / name, column, value, tab=tab)

    for label, value in (("nul", "a cat\x00 naps"), ("bell", "a cat \x07naps"), ("del", "a cat \x7fnaps")):
        cases += [
            Case(
                AREA,
                f"msrvtt/test.csv/{label}-caption",
                _describe_error(
                    "msrvtt",
                    csv_cell("msrvtt", "MSRVTT_JSFUSION_test.csv", "sentence", value),
                    "MSRVTT_JSFUSION_test.csv",
                    "line 2",
                ),
            ),
            Case(
                AREA,
                f"custom-csv/{label}-caption",
                _describe_error(
                    "custom-csv", csv_cell("custom-csv", "ann.csv", "caption", value), "ann.csv", "line 2"
                ),
            ),
            Case(
                AREA,
                f"lsmdc/{label}-sentence",
                _describe_error(
                    "lsmdc",
                    csv_cell("lsmdc", "LSMDC16_challenge_1000_publictect.csv", "5", value, tab=True),
                    "publictect.csv",
                    "line 1",
                ),
            ),
        ]
    cases += [
        Case(
            AREA,
            "msrvtt/test.csv/empty-sentence",
            _describe_error(
                "msrvtt",
                csv_cell("msrvtt", "MSRVTT_JSFUSION_test.csv", "sentence", "  "),
                "MSRVTT_JSFUSION_test.csv",
            ),
        ),
        Case(
            AREA,
            "lsmdc/empty-sentence",
            _describe_error(
                "lsmdc",
                csv_cell("lsmdc", "LSMDC16_challenge_1000_publictect.csv", "5", " ", tab=True),
                "publictect.csv",
                "line 1",
            ),
        ),
        Case(
            AREA,
            "custom-csv/nul-video",
            _describe_error(
                "custom-csv",
                csv_cell("custom-csv", "ann.csv", "video", "clips/a\x00.mp4"),
                "ann.csv",
                "line 2",
            ),
        ),
        Case(
            AREA,
            "custom-csv/name-too-long",
            _describe_error(
                "custom-csv", csv_cell("custom-csv", "ann.csv", "video", "clips/" + "c" * 300), "ann.csv"
            ),
        ),
        Case(
            AREA,
            "custom-csv/split-with-slash",
            _describe_error(
                "custom-csv", csv_cell("custom-csv", "ann.csv", "split", "train/extra"), "train/extra"
            ),
        ),
    ]

    def header_only(name: str) -> Callable[[Path], None]:
        return lambda folder: (folder / name).write_text((folder / name).read_text().splitlines()[0] + "\n")

    def drop_column(name: str, column: str) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            rows = [_split_csv(ln) for ln in (folder / name).read_text().splitlines() if ln.strip()]
            i = rows[0].index(column)
            (folder / name).write_text(
                "\n".join(",".join(_quote(c) for j, c in enumerate(r) if j != i) for r in rows) + "\n"
            )

        return damage

    def short_row(name: str) -> Callable[[Path], None]:
        return lambda folder: (folder / name).write_text((folder / name).read_text() + "lonely\n")

    def lsmdc_fields(folder: Path) -> None:
        p = folder / "LSMDC16_challenge_1000_publictect.csv"
        p.write_text(p.read_text().replace("\t", " ", 3))

    def huge_field(folder: Path) -> None:
        p = folder / "ann.csv"
        p.write_text(p.read_text() + "clips/x.mp4," + "word " * 40_000 + ",test\n")

    def unclosed_quote(folder: Path) -> None:
        p = folder / "ann.csv"
        p.write_text(p.read_text() + 'clips/x.mp4,"a quote that never ends\n')

    cases += [
        Case(
            AREA,
            "msrvtt/test.csv/header-only",
            _describe_error("msrvtt", header_only("MSRVTT_JSFUSION_test.csv"), "MSRVTT_JSFUSION_test.csv"),
        ),
        Case(
            AREA,
            "msrvtt/9k.csv/header-only",
            _describe_error("msrvtt", header_only("MSRVTT_train.9k.csv"), "MSRVTT_train.9k.csv"),
        ),
        Case(
            AREA, "custom-csv/header-only", _describe_error("custom-csv", header_only("ann.csv"), "ann.csv")
        ),
        Case(
            AREA,
            "msrvtt/test.csv/no-sentence-column",
            _describe_error(
                "msrvtt",
                drop_column("MSRVTT_JSFUSION_test.csv", "sentence"),
                "MSRVTT_JSFUSION_test.csv",
                "sentence",
            ),
        ),
        Case(
            AREA,
            "custom-csv/no-caption-column",
            _describe_error("custom-csv", drop_column("ann.csv", "caption"), "ann.csv", "caption"),
        ),
        Case(AREA, "custom-csv/short-row", _describe_error("custom-csv", short_row("ann.csv"), "ann.csv")),
        Case(AREA, "custom-csv/huge-field", _describe_error("custom-csv", huge_field, "ann.csv")),
        Case(AREA, "custom-csv/unclosed-quote", _describe_error("custom-csv", unclosed_quote, "ann.csv")),
        Case(
            AREA, "lsmdc/too-few-fields", _describe_error("lsmdc", lsmdc_fields, "publictect.csv", "line 1")
        ),
    ]

    jsonl = {
        "custom-jsonl": ("ann.jsonl", "caption"),
        "synthetic": ("captions.jsonl", "caption"),
    }
    for kind, (name, key) in jsonl.items():
        # The bad character is glued to the first word, so that the synthetic captions keep
        # one role per word and the character is the only fault.
        for label, value in (
            ("nul-caption", lambda c: c.replace(" ", "\x00 ", 1)),
            ("surrogate-caption", lambda c: c.replace(" ", "\udfff ", 1)),
            ("number-caption", 7),
            ("missing-caption", _DELETE),
            ("empty-caption", " "),
        ):

            def damage(folder: Path, name: str = name, key: str = key, value: Any = value) -> None:
                _edit_jsonl_first(folder / name, key, value)

            cases.append(Case(AREA, f"{kind}/{name}/{label}", _describe_error(kind, damage, name, "line 1")))

        def deep_line(folder: Path, name: str = name) -> None:
            p = folder / name
            p.write_text("[" * 50_000 + "]" * 50_000 + "\n" + p.read_text())

        def list_line(folder: Path, name: str = name) -> None:
            p = folder / name
            p.write_text("[1, 2]\n" + p.read_text())

        cases.append(
            Case(AREA, f"{kind}/{name}/nested-line", _describe_error(kind, deep_line, name, "line 1"))
        )
        cases.append(Case(AREA, f"{kind}/{name}/list-line", _describe_error(kind, list_line, name, "line 1")))
    return cases


# ---------------------------------------------------------------- MSVD pickles

PKL = "raw-captions.pkl"


def _pickle_bytes(ctx: Context) -> bytes:
    return (baseline(ctx, "msvd-pkl") / PKL).read_bytes()


class _Shell:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo pwned > /tmp/vtrbench-faults-pwned",))


def _pickle_cases() -> list[Case]:
    cases = []

    def with_bytes(make: Callable[[bytes], bytes]) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            (folder / PKL).write_bytes(make((folder / PKL).read_bytes()))

        return damage

    # Truncated at 16 points spread over the file (every k-th byte).
    for i in range(1, 17):
        cases.append(
            Case(
                AREA,
                f"msvd-pkl/truncated-{i:02d}of16",
                _describe_error("msvd-pkl", with_bytes(lambda b, i=i: b[: len(b) * i // 17]), PKL),
                quick=i % 4 == 0,  # every fourth in the fast set
            )
        )
    # One byte flipped at 24 places: an error naming the file, or (inside a caption) still valid.
    for i in range(24):

        def flip(b: bytes, i: int = i) -> bytes:
            pos = (len(b) - 1) * i // 23
            return b[:pos] + bytes([b[pos] ^ 0xFF]) + b[pos + 1 :]

        cases.append(
            Case(
                AREA,
                f"msvd-pkl/flip-{i:02d}",
                _describe_error_or_valid("msvd-pkl", with_bytes(flip), PKL),
                quick=i % 4 == 0,
            )
        )

    def tokens(folder: Path) -> dict[str, list[list[str]]]:
        return pickle.loads((folder / PKL).read_bytes())  # noqa: S301 - our own baseline

    def dump(value: Any, protocol: int = 4) -> Callable[[Path], None]:
        def damage(folder: Path) -> None:
            (folder / PKL).write_bytes(
                pickle.dumps(value(tokens(folder)) if callable(value) else value, protocol=protocol)
            )

        return damage

    first = _first_key
    wrong: dict[str, Any] = {
        "top-list": lambda t: list(t.items()),
        "top-string": "captions",
        "top-none": None,
        "int-key": lambda t: {1: [["a"]], **t},
        "tuple-key": lambda t: {("a", "b"): [["a"]], **t},
        "captions-string": lambda t: {k: "a cat" for k in t},
        "caption-string": lambda t: {k: ["a cat"] for k in t},
        "token-int": lambda t: {**t, first(t): [["a", 3]]},
        "token-bytes": lambda t: {**t, first(t): [[b"a", b"cat"]]},
        "token-nul": lambda t: {**t, first(t): [["a", "c\x00t"]]},
        "token-surrogate": lambda t: {**t, first(t): [["a", "\ud800"]]},
        "empty-caption": lambda t: {**t, first(t): [[]]},
        "traversal-key": lambda t: {TRAVERSAL: [["a"]], **t},
        "nul-key": lambda t: {"vid\x00": [["a"]], **t},
        "huge-caption-list": lambda t: {**t, first(t): [["x"]] * 3 + [None]},
    }
    for label, value in wrong.items():
        cases.append(Case(AREA, f"msvd-pkl/{label}", _describe_error("msvd-pkl", dump(value), PKL)))

    refused = {
        "global-os-system": lambda folder: (folder / PKL).write_bytes(pickle.dumps({"v": _Shell()})),
        "global-set-proto2": dump(lambda t: {k: {"a"} for k in t}, protocol=2),
        "global-eval-proto0": _replace(PKL, b"cbuiltins\neval\n(S'1+1'\ntR."),
        "memo-put-4e9": _replace(PKL, b"\x80\x02}r\xff\xff\xff\xff."),
        "memo-put-text": _replace(PKL, b"(dp99999999999999999999\n."),
        "binunicode-8gb": _replace(PKL, b"\x80\x04\x8d" + (2**33).to_bytes(8, "little") + b"abc."),
        # 100 000 nested lists as a caption (pickle.dumps itself cannot write that deep).
        "deep-caption": _replace(
            PKL, b"\x80\x02}X\x03\x00\x00\x00vid" + b"]" * 100_000 + b"a" * 99_999 + b"s."
        ),
        "long4-huge": _replace(PKL, b"\x80\x02\x8b\xff\xff\xff\x7f\x00."),
        "ext-opcode": _replace(PKL, b"\x80\x02\x82\x01."),
        "persid": _replace(PKL, b"Pabc\n."),
        "stack-underflow": _replace(PKL, b"\x80\x02s."),
        "text-not-pickle": _replace(PKL, b"video1 a cat\n"),
        "json-not-pickle": _replace(PKL, b'{"v": [["a"]]}'),
    }
    for label, damage in refused.items():
        cases.append(Case(AREA, f"msvd-pkl/{label}", _describe_error("msvd-pkl", damage, PKL)))
    return cases


# ---------------------------------------------------------------- valid variants that must be read right


def _counts(run: CliRun) -> dict[str, tuple[int, int]] | None:
    info = describe_json(run)
    if info is None:
        return None
    return {k: (v["videos"], v["captions"]) for k, v in info["splits"].items()}


def _same_as_baseline(kind: str, change: Callable[[Path], None]) -> Callable[[Path, Context], Outcome]:
    """A valid variant of the baseline (BOM, CRLF, another pickle protocol) reads to the same counts."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        expected = _counts(describe(baseline(ctx, kind), kind, "--json"))
        folder = copy_baseline(tmp, ctx, kind)
        change(folder)
        r = describe(folder, kind, "--json")
        got = _counts(r)
        return expect_ok(
            r, lambda: None if got == expected and expected else f"counts {got}, expected {expected}"
        )

    return run


def _bom_crlf(names: list[str]) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        for name in names:
            text = (folder / name).read_text(encoding="utf-8")
            (folder / name).write_bytes(
                b"\xef\xbb\xbf" + text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
            )

    return change


def _valid_cases() -> list[Case]:
    cases = [
        Case(AREA, f"{k}/baseline", _same_as_baseline(k, lambda folder: None))
        for k in (*BASELINES, "synthetic")
    ]
    cases += [
        Case(
            AREA,
            "msrvtt/bom-crlf",
            _same_as_baseline("msrvtt", _bom_crlf(["MSRVTT_JSFUSION_test.csv", "MSRVTT_train.9k.csv"])),
        ),
        Case(
            AREA,
            "msvd/bom-crlf",
            _same_as_baseline("msvd", _bom_crlf(["test_list.txt", "train_list.txt", "captions_msvd.json"])),
        ),
        Case(
            AREA,
            "lsmdc/crlf",
            _same_as_baseline("lsmdc", _bom_crlf(["LSMDC16_challenge_1000_publictect.csv"])),
        ),
        Case(
            AREA,
            "didemo/bom-crlf",
            _same_as_baseline("didemo", _bom_crlf(["test_list.txt", "test_data.json"])),
        ),
        Case(AREA, "custom-csv/bom-crlf", _same_as_baseline("custom-csv", _bom_crlf(["ann.csv"]))),
        Case(AREA, "custom-jsonl/bom-crlf", _same_as_baseline("custom-jsonl", _bom_crlf(["ann.jsonl"]))),
    ]
    for protocol in (0, 2, 3, 5):

        def reprotocol(folder: Path, protocol: int = protocol) -> None:
            data = pickle.loads((folder / PKL).read_bytes())  # noqa: S301 - our own baseline
            (folder / PKL).write_bytes(pickle.dumps(data, protocol=protocol))

        cases.append(Case(AREA, f"msvd-pkl/protocol-{protocol}", _same_as_baseline("msvd-pkl", reprotocol)))

    def newline_in_sentence(tmp: Path, ctx: Context) -> Outcome:
        # Real ActivityNet sentences contain line breaks: whitespace, kept, not an error.
        folder = copy_baseline(tmp, ctx, "activitynet")
        _edit_json(folder / "val_1.json", lambda d: _set_caption_json("activitynet", d, "people \napplaud"))
        return expect_ok(describe(folder, "activitynet", "--json"))

    def absolute_custom(tmp: Path, ctx: Context) -> Outcome:
        # Custom files may name any path by design (README): an absolute one is read as written.
        folder = copy_baseline(tmp, ctx, "custom-csv")
        clip = tmp / "elsewhere" / "clip.mp4"
        (folder / "ann.csv").write_text(
            f"video,caption,split\n{clip},a cat naps,test\nrel.mp4,a dog runs,train\n"
        )
        from vtrbench.datasets import load_dataset

        r = describe(folder, "custom-csv", "--json")

        def check() -> str | None:
            index = load_dataset("custom", folder / "ann.csv", None)
            paths = {v.id: v.path for v in index.videos}
            return None if paths[str(clip)] == clip else f"absolute path changed to {paths[str(clip)]}"

        return expect_ok(r, check)

    def shared_between_splits(spelling: str) -> Callable[[Path, Context], Outcome]:
        def run(tmp: Path, ctx: Context) -> Outcome:
            folder = copy_baseline(tmp, ctx, "custom-csv")
            (folder / "ann.csv").write_text(
                f"video,caption,split\nclips/a.mp4,a cat naps,train\n{spelling},a cat sleeps,test\n"
                "clips/b.mp4,a dog runs,test\nclips/c.mp4,a bird sings,train\n"
            )
            r = describe(folder, "custom-csv", "--json")
            info = describe_json(r) or {}
            found = [w for w in info.get("warnings", []) if "'train'" in w and "'test'" in w]

            def check() -> str | None:
                if not found:
                    return f"no warning about the video in train and test: {info.get('warnings')}"
                return None if "clips/a.mp4" in found[0] and "1 video" in found[0] else f"warning: {found[0]}"

            return expect_ok(r, check)

        return run

    def msrvtt_alternatives(tmp: Path, ctx: Context) -> Outcome:
        # 7k is a subset of 9k by design: alternatives, not a leak; 1k-A shares nothing with them.
        r = describe(baseline(ctx, "msrvtt"), "msrvtt", "--json")
        info = describe_json(r) or {}
        leaks = [w for w in info.get("warnings", []) if "both split" in w]
        return expect_ok(r, lambda: f"spurious overlap warning: {leaks}" if leaks else None)

    def msrvtt_leak(tmp: Path, ctx: Context) -> Outcome:
        folder = copy_baseline(tmp, ctx, "msrvtt")
        test_ids = [
            _split_csv(ln)[2] for ln in (folder / "MSRVTT_JSFUSION_test.csv").read_text().splitlines()[1:]
        ]
        p = folder / "MSRVTT_train.9k.csv"
        p.write_text(p.read_text() + test_ids[0] + "\n")
        _edit_json(
            folder / "MSRVTT_data.json",
            lambda d: (d["sentences"].append({"video_id": test_ids[0], "caption": "x y", "sen_id": 999}), d)[
                1
            ],
        )
        r = describe(folder, "msrvtt", "--json")
        info = describe_json(r) or {}
        leaks = [w for w in info.get("warnings", []) if "both split '9k' and split '1k-A'" in w]
        return expect_ok(r, lambda: None if leaks else f"no leak warning: {info.get('warnings')}")

    cases += [
        Case(AREA, "activitynet/newline-in-sentence", newline_in_sentence),
        Case(AREA, "custom-csv/absolute-path-by-design", absolute_custom),
        Case(AREA, "custom-csv/same-video-train-test", shared_between_splits("clips/a.mp4")),
        Case(AREA, "custom-csv/same-file-two-spellings", shared_between_splits("./clips/../clips/a.mp4")),
        Case(AREA, "msrvtt/7k-in-9k-not-a-leak", msrvtt_alternatives),
        Case(AREA, "msrvtt/test-video-in-9k", msrvtt_leak),
    ]
    return cases


# ---------------------------------------------------------------- `vtrbench extract`: fail before decoding


def _extract_error(
    kind: str, damage: Callable[[Path], None], mention: str
) -> Callable[[Path, Context], Outcome]:
    def run(tmp: Path, ctx: Context) -> Outcome:
        folder = copy_baseline(tmp, ctx, kind)
        damage(folder)
        videos = synthetic_dataset(ctx) / "videos"
        out = tmp / "out" / "cache.h5"
        argv = [
            "extract", "--dataset", dataset_of(kind), "--annotations", annotations_arg(folder, kind),
            "--video-root", videos, "--model", TINY_MODEL, "--pretrained", "none", "--device", "cpu",
            "--workers", 0, "--quiet", "--output", out,
        ]  # fmt: skip
        # Extraction itself is replaced by a tripwire: reaching it means the annotations were
        # accepted and decoding would start (the NUL caption used to fail only at assembly).
        from unittest import mock

        import vtrbench.extract.pipeline as pipeline

        reached: list[bool] = []

        def tripwire(*args: Any, **kwargs: Any) -> Any:
            reached.append(True)
            raise RuntimeError("extraction started")

        with mock.patch.object(pipeline, "extract_features", tripwire):
            run = run_cli(argv)
        if reached:
            return Outcome("silently_wrong", "the annotations were accepted: extraction started")
        outcome = expect_error(run, mention)
        leftovers = [p.name for p in (tmp / "out").iterdir()] if (tmp / "out").exists() else []
        if outcome.kind == "clear_error" and leftovers:
            return Outcome("silently_wrong", f"extract wrote {leftovers} before refusing the annotations")
        return outcome

    return run


def _extract_cases() -> list[Case]:
    def synth_nul(folder: Path) -> None:
        _edit_jsonl_first(folder / "captions.jsonl", "caption", lambda c: c.replace(" ", "\x00 ", 1))

    def synth_traversal(folder: Path) -> None:
        _synth_rename_first_video(folder, TRAVERSAL)

    def custom_bell(folder: Path) -> None:
        _edit_csv_cell(folder / "ann.csv", "caption", "a cat \x07naps")

    def didemo_folder(folder: Path) -> None:
        (folder / "test_data.json").unlink()
        (folder / "test_data.json").mkdir()

    def anet_deep(folder: Path) -> None:
        (folder / "val_1.json").write_bytes(b"{" + b'"a":[' * 50_000)

    def msrvtt_traversal(folder: Path) -> None:
        _edit_csv_cell(folder / "MSRVTT_JSFUSION_test.csv", "video_id", TRAVERSAL)

    return [
        Case(AREA, "extract/synthetic-nul-caption", _extract_error("synthetic", synth_nul, "captions.jsonl")),
        Case(
            AREA, "extract/synthetic-traversal-id", _extract_error("synthetic", synth_traversal, "meta.json")
        ),
        Case(AREA, "extract/custom-control-char", _extract_error("custom-csv", custom_bell, "ann.csv")),
        Case(AREA, "extract/didemo-folder-json", _extract_error("didemo", didemo_folder, "test_data.json")),
        Case(AREA, "extract/activitynet-nested", _extract_error("activitynet", anet_deep, "val_1.json")),
        Case(
            AREA,
            "extract/msrvtt-traversal-id",
            _extract_error("msrvtt", msrvtt_traversal, "MSRVTT_JSFUSION_test.csv"),
        ),
        Case(
            AREA,
            "extract/msvd-pickle-global",
            _extract_error("msvd-pkl", _replace(PKL, b"cos\nsystem\n(S'true'\ntR."), PKL),
        ),
    ]


# ---------------------------------------------------------------- random damage (full runs only)

_FUZZ_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    True,
    "",
    " ",
    "x\x00",
    "../x",
    "a/b",
    [],
    {},
    [[]],
    ["x"],
]
_FUZZ_VALUES += [{"a": None}, "x" * 300, "\ud800", "\x07"]


def _byte_damage(data: bytes, rng: Any) -> bytes:
    out = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        pos = rng.randrange(max(1, len(out)))
        op = rng.random()
        if op < 0.4 and out:
            out[pos] = rng.randrange(256)
        elif op < 0.6:
            out[pos:pos] = bytes([rng.choice(b'\x00\n\r\t,"[]{}:\\/.\x07 a0')])
        elif op < 0.8 and out:
            del out[pos : pos + rng.randint(1, 20)]
        elif out:
            start = rng.randrange(len(out))
            out[pos:pos] = out[start : start + rng.randint(1, 40)]
    return bytes(out)


def _places(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _places(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _places(v, (*path, i))
    return found


def _structure_damage(obj: Any, rng: Any) -> Any:
    import copy

    for _ in range(rng.choice([1, 1, 2])):
        where = rng.choice(_places(obj))
        value = copy.deepcopy(rng.choice(_FUZZ_VALUES))
        if not where:
            obj = value
            continue
        holder = obj
        for k in where[:-1]:
            holder = holder[k]
        holder[where[-1]] = value
    return obj


def _fuzz(kind: str, name: str, fmt: str, structural: bool, seed: int, n: int = 40) -> Callable[..., Outcome]:
    """``n`` random damages of one file (bytes, or values swapped for ones of the wrong type): each
    must end as a clear error naming the file or as a successful read; one case for the batch."""

    def run(tmp: Path, ctx: Context) -> Outcome:
        import random

        rng = random.Random(f"{kind}/{name}/{structural}/{seed}")
        original = (baseline(ctx, kind) / name).read_bytes()
        refused = accepted = 0
        for i in range(n):
            folder = tmp / f"try{i}"
            shutil.copytree(baseline(ctx, kind), folder)
            if not structural:
                (folder / name).write_bytes(_byte_damage(original, rng))
            elif fmt == "pkl":
                obj = pickle.loads(original)  # noqa: S301 - our own baseline
                (folder / name).write_bytes(pickle.dumps(_structure_damage(obj, rng)))
            elif fmt == "jsonl":
                lines = [ln for ln in original.decode().splitlines() if ln.strip()]
                j = rng.randrange(len(lines))
                lines[j] = json.dumps(_structure_damage(json.loads(lines[j]), rng))
                (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
            else:
                text = json.dumps(_structure_damage(json.loads(original), rng))
                (folder / name).write_text(text, encoding="utf-8", errors="surrogatepass")
            r = describe(folder, kind)
            shutil.rmtree(folder)
            if r.code == 0 and not r.traceback:
                accepted += 1
                continue
            outcome = expect_error(r, name if kind not in ("custom-csv", "custom-jsonl") else "ann.")
            if outcome.kind != "clear_error":
                return Outcome(outcome.kind, f"try {i}: {outcome.detail}")
            refused += 1
        return Outcome("handled", f"{refused} refused with a clear error, {accepted} still valid")

    return run


def _fuzz_cases() -> list[Case]:
    found = []
    for kind, files in FILES.items():
        name, fmt = files[0]
        found.append(Case(AREA, f"fuzz/{kind}/{name}/bytes", _fuzz(kind, name, fmt, False, 0), quick=False))
        if fmt in ("json", "jsonl", "pkl"):
            found.append(
                Case(AREA, f"fuzz/{kind}/{name}/values", _fuzz(kind, name, fmt, True, 0), quick=False)
            )
    return found


def cases() -> list[Case]:
    found: list[Case] = []
    for kind, files in FILES.items():
        for i, (name, fmt) in enumerate(files):
            # The fast set (CI) damages each dataset's first file every way; the others in full runs.
            found += [c if i == 0 else replace(c, quick=False) for c in _generic_cases(kind, name, fmt)]
    for kind in CAPTION_JSON:
        found += _json_caption_cases(kind)
    found += _missing_field_cases()
    found += _traversal_cases()
    found += _text_format_cases()
    found += _pickle_cases()
    found += _valid_cases()
    found += _extract_cases()
    found += _fuzz_cases()
    return found
