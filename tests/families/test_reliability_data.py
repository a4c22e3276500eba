"""Bad annotation input ends as one AnnotationError naming the file (issue 9, dataset side).

References used below are independent of vtrbench's readers: Python's own ``pickle``
(with every global refused, as the original restricted unpickler did), the ``csv``
module on the same rows, and ``os.path`` for where a path points.
"""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from vtrbench.datasets import load_dataset
from vtrbench.datasets._formats import check_text, load_plain_pickle, read_json
from vtrbench.errors import AnnotationError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "datasets"
TRAVERSAL = "../../etc/shadow"


def copy(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


# --- captions and ids are checked when read, naming the file and the line or key -------------------------


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        ("a cat\x00 naps", "NUL byte"),
        ("a cat \x07naps", "U+0007"),
        ("a cat \x1bnaps", "U+001B"),
        ("a cat \x9bnaps", "U+009B"),
        ("a cat \ud800 naps", "surrogate"),
    ],
)
def test_custom_csv_caption_with_a_control_character(tmp_path: Path, bad: str, what: str) -> None:
    path = tmp_path / "ann.csv"
    path.write_text(f"video,caption\nclips/a.mp4,a dog runs\nclips/b.mp4,{bad}\n", errors="surrogatepass")
    if "\ud800" in bad:  # not valid UTF-8 on disk: the file is refused as such
        with pytest.raises(AnnotationError, match=r"ann\.csv: not UTF-8"):
            load_dataset("custom", path, None)
        return
    with pytest.raises(
        AnnotationError, match=rf"ann\.csv, line 3: column 'caption' contains .*{re.escape(what)}"
    ):
        load_dataset("custom", path, None)


def test_json_escaped_nul_and_surrogate_are_found_with_their_place(tmp_path: Path) -> None:
    folder = copy("msvd", tmp_path)
    data = json.loads((folder / "captions_msvd.json").read_text())
    data["vidB_2_9"] = ["a man\u0000 cooks"]
    (folder / "captions_msvd.json").write_text(json.dumps(data))
    assert "\\u0000" in (folder / "captions_msvd.json").read_text()  # written as an escape
    with pytest.raises(
        AnnotationError, match=r"captions_msvd\.json, \['vidB_2_9'\]\[0\]: string contains a NUL"
    ):
        load_dataset("msvd", folder, None)
    (folder / "captions_msvd.json").write_text('{"vidB_2_9": ["a \\ud800 b"]}')
    with pytest.raises(AnnotationError, match="lone surrogate U[+]D800"):
        read_json(folder / "captions_msvd.json")


def test_a_surrogate_pair_and_non_ascii_text_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('["caf\\u00e9 \\ud83d\\ude00", "\\u0085x"]')
    # U+0085 (NEL) is a control character; the pair is one valid emoji.
    with pytest.raises(AnnotationError, match=r"\[1\]: string contains the control character U\+0085"):
        read_json(path)
    path.write_text('["caf\\u00e9 \\ud83d\\ude00", "a\\tb\\nc"]')
    assert read_json(path) == ["café \U0001f600", "a\tb\nc"]


def test_check_text_keeps_whitespace_controls_and_refuses_the_rest() -> None:
    # Real ActivityNet sentences contain "\n"; the CLIP tokenizer turns whitespace into spaces.
    assert check_text(" people \napplaud\t", "f", "x") == "people \napplaud"
    for code in [*range(0, 9), *range(0x0E, 0x20), *range(0x7F, 0xA0)]:
        with pytest.raises(AnnotationError):
            check_text(f"a{chr(code)}b", "f", "x")
    with pytest.raises(AnnotationError, match="f: x: empty caption"):
        check_text(" \t ", "f", "x")


def test_msrvtt_json_caption_with_nul_names_the_sentence(tmp_path: Path) -> None:
    folder = copy("msrvtt", tmp_path)
    data = json.loads((folder / "MSRVTT_data.json").read_text())
    data["sentences"][3]["caption"] = "x\x00y"
    (folder / "MSRVTT_data.json").write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"MSRVTT_data\.json, \['sentences'\]\[3\]\['caption'\]"):
        load_dataset("msrvtt", folder, None)


def test_empty_caption_is_refused_where_the_format_has_one_caption_per_entry(tmp_path: Path) -> None:
    folder = copy("msvd", tmp_path)
    data = json.loads((folder / "captions_msvd.json").read_text())
    data["vidB_2_9"] = ["  "]
    (folder / "captions_msvd.json").write_text(json.dumps(data))
    with pytest.raises(
        AnnotationError, match=r"captions_msvd\.json: key 'vidB_2_9', caption 0: empty caption"
    ):
        load_dataset("msvd", folder, None)


# --- ids of the standard datasets stay inside --video-root -------------------------------------------------


@pytest.mark.parametrize("bad", [TRAVERSAL, "/etc/shadow", "..", "a/b", "a\\b"])
def test_id_lists_refuse_paths(tmp_path: Path, bad: str) -> None:
    for name in ("msvd", "didemo"):
        folder = copy(name, tmp_path / name)
        lines = (folder / "test_list.txt").read_text().splitlines()
        (folder / "test_list.txt").write_text("\n".join([lines[0], bad, *lines[1:]]) + "\n")
        with pytest.raises(
            AnnotationError, match=r"test_list\.txt: line 2: video id .* not a plain file name"
        ):
            load_dataset(name, folder, tmp_path / "videos")


def test_every_standard_format_refuses_a_traversal_id(tmp_path: Path) -> None:
    msrvtt = copy("msrvtt", tmp_path / "a")
    text = (msrvtt / "MSRVTT_JSFUSION_test.csv").read_text().replace("video5", TRAVERSAL)
    (msrvtt / "MSRVTT_JSFUSION_test.csv").write_text(text)
    lsmdc = copy("lsmdc", tmp_path / "b")
    p = lsmdc / "LSMDC16_challenge_1000_publictect.csv"
    p.write_text(TRAVERSAL + p.read_text()[p.read_text().index("\t") :])
    anet = copy("activitynet", tmp_path / "c")
    (anet / "val_ids.json").write_text(json.dumps(["v_" + TRAVERSAL]))
    for name, folder, filename in [
        ("msrvtt", msrvtt, "MSRVTT_JSFUSION_test.csv"),
        ("lsmdc", lsmdc, "LSMDC16_challenge_1000_publictect.csv"),
        ("activitynet", anet, "val_ids.json"),
    ]:
        with pytest.raises(AnnotationError, match=rf"{filename}.*not a plain file name"):
            load_dataset(name, folder, tmp_path / "videos")


def test_standard_video_paths_stay_under_the_video_root(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    for name in ("msrvtt", "msvd", "lsmdc", "didemo", "activitynet"):
        index = load_dataset(name, FIXTURES / name, root)
        for v in index.videos:
            real = os.path.normpath(os.path.abspath(v.path))
            assert os.path.commonpath([real, str(root)]) == str(root), (name, v.path)


def test_custom_files_may_use_absolute_and_parent_paths_by_design(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "clip.mp4"
    path = tmp_path / "ann" / "ann.csv"
    path.parent.mkdir()
    path.write_text(f"video,caption\n{outside},a cat\n../up/clip.mp4,a dog\n")
    index = load_dataset("custom", path, None)
    paths = {v.id: v.path for v in index.videos}
    assert paths[str(outside)] == outside
    assert os.path.normpath(paths["../up/clip.mp4"]) == str(tmp_path / "up" / "clip.mp4")


# --- files that are not files, nested, empty --------------------------------------------------------------


@pytest.mark.parametrize(("name", "filename"), [("msvd", "captions_msvd.json"), ("didemo", "test_data.json"),
                                                ("msrvtt", "MSRVTT_JSFUSION_test.csv"),
                                                ("activitynet", "val_1.json")])  # fmt: skip
def test_a_folder_named_like_an_annotation_file(tmp_path: Path, name: str, filename: str) -> None:
    folder = copy(name, tmp_path)
    (folder / filename).unlink()
    (folder / filename).mkdir()
    with pytest.raises(AnnotationError, match=rf"{filename}: is a folder"):
        load_dataset(name, folder, None)


def test_custom_folder_named_csv(tmp_path: Path) -> None:
    (tmp_path / "x.csv").mkdir()
    with pytest.raises(AnnotationError, match=r"x\.csv is a folder"):
        load_dataset("custom", tmp_path / "x.csv", None)


def test_devices_and_pipes_are_refused_without_reading(tmp_path: Path) -> None:
    folder = copy("msvd", tmp_path)
    (folder / "captions_msvd.json").unlink()
    os.mkfifo(folder / "captions_msvd.json")  # reading it would block forever
    with pytest.raises(AnnotationError, match="not a regular file"):
        load_dataset("msvd", folder, None)


def test_deeply_nested_json_is_an_annotation_error(tmp_path: Path) -> None:
    path = tmp_path / "val_1.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(AnnotationError, match=r"val_1\.json: JSON nested too deeply"):
        read_json(path)
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"video": "a.mp4", "caption": "x"}\n' + "{" * 100_000 + "\n")
    with pytest.raises(AnnotationError, match=r"a\.jsonl, line 2: "):
        load_dataset("custom", lines, None)


def test_repeated_json_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"v1": ["a"], "v2": ["b"], "v1": ["c"]}')
    assert json.loads(path.read_text()) == {"v1": ["c"], "v2": ["b"]}  # json alone loses "a" silently
    with pytest.raises(AnnotationError, match=r"c\.json: key 'v1' appears twice"):
        read_json(path)


def test_empty_id_list_and_header_only_csv(tmp_path: Path) -> None:
    folder = copy("msvd", tmp_path / "a")
    (folder / "test_list.txt").write_text("\n  \n")
    with pytest.raises(AnnotationError, match=r"test_list\.txt: no video ids"):
        load_dataset("msvd", folder, None)
    folder = copy("msrvtt", tmp_path / "b")
    (folder / "MSRVTT_train.9k.csv").write_text("video_id\n")
    with pytest.raises(AnnotationError, match=r"MSRVTT_train\.9k\.csv: no video ids"):
        load_dataset("msrvtt", folder, None)


def test_bom_and_crlf_read_like_plain_files(tmp_path: Path) -> None:
    plain = load_dataset("custom", FIXTURES / "custom" / "split.csv", tmp_path)
    path = tmp_path / "split.csv"
    text = (FIXTURES / "custom" / "split.csv").read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    dos = load_dataset("custom", path, tmp_path)
    assert [(t.video, t.caption) for t in dos.texts] == [(t.video, t.caption) for t in plain.texts]
    assert dos.describe() == plain.describe()


# --- MSVD pickles: every damage is one AnnotationError; plain data still loads ---------------------------


class _NoGlobals(pickle.Unpickler):
    """The reference: Python's unpickler with every global refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError("global")


def _reference(data: bytes) -> tuple[bool, Any]:
    try:
        return True, _NoGlobals(io.BytesIO(data), encoding="utf-8").load()
    except Exception:  # noqa: BLE001 - anything the reference refuses
        return False, None


SAMPLE = {"vidA_1_5": [["a", "cat", "plays"], ["a", "cat"]], "vidB_2_9": [["a", "man", "cooks"]]}


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_every_truncation_and_byte_flip_of_a_pickle(tmp_path: Path, protocol: int) -> None:
    good = pickle.dumps(SAMPLE, protocol=protocol)
    path = tmp_path / "raw-captions.pkl"
    variants = [good[:k] for k in range(len(good))]
    variants += [good[:i] + bytes([good[i] ^ 0xFF]) + good[i + 1 :] for i in range(len(good))]
    accepted = 0
    for data in variants:
        path.write_bytes(data)
        ok, value = _reference(data)
        try:
            got = load_plain_pickle(path)
        except AnnotationError as e:
            assert str(e).startswith(f"{path}: refused or unreadable pickle: ") and "\n" not in str(e)
            continue
        # Accepted only what the reference also decodes, to the same value.
        assert ok and got == value, data
        accepted += 1
    assert accepted < len(variants) // 2


def test_pickle_memo_index_and_huge_lengths_are_refused_before_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "p.pkl"
    for data, why in [
        (b"\x80\x02}r\x00\x00\x00\x10.", "memo index 268435456"),  # would zero a 4 GB memo table
        (b"(dp99999999999999\n.", "memo index"),
        (b"\x80\x04\x8d" + (2**33).to_bytes(8, "little") + b"abc.", "damaged or truncated"),
        (b"\x80\x02\x82\x01.", "opcode EXT1"),
        (b"cbuiltins\neval\n(S'1'\ntR.", "refers to builtins.eval"),
    ]:
        path.write_bytes(data)
        with pytest.raises(AnnotationError, match=why):
            load_plain_pickle(path)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ([("vidA_1_5", [["a"]])], "top level"),
        ({1: [["a"]]}, "key 1"),
        ({"vidA_1_5": "a cat"}, "key 'vidA_1_5'"),
        ({"vidA_1_5": [["a", 3]]}, "caption 0"),
        ({"vidA_1_5": [["a", "c\x00t"]]}, "NUL"),
        ({"vidA_1_5": [[]]}, "empty caption"),
        ({TRAVERSAL: [["a"]]}, "not a plain file name"),
    ],
)
def test_msvd_pickle_of_wrong_types(tmp_path: Path, value: Any, where: str) -> None:
    folder = copy("msvd", tmp_path)
    (folder / "raw-captions.pkl").write_bytes(pickle.dumps(value))
    with pytest.raises(AnnotationError, match=rf"raw-captions\.pkl: .*{where}"):
        load_dataset("msvd", folder, None)


# --- videos shared between splits ------------------------------------------------------------------------


def _rows_by_split(path: Path) -> dict[str, set[str]]:
    by: dict[str, set[str]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            by.setdefault(row["split"] or "all", set()).add(os.path.normpath(row["video"]))
    return by


def test_videos_shared_between_custom_splits_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "ann.csv"
    path.write_text(
        "video,caption,split\nclips/a.mp4,a cat,train\nclips/b.mp4,a dog,train\n"
        "./clips/a.mp4,a cat sleeps,test\nclips/c.mp4,a bird,test\nclips/b.mp4,a dog again,val\n"
    )
    index = load_dataset("custom", path, None)
    by = _rows_by_split(path)  # reference: the csv module and os.path on the same rows
    for a, b in [("train", "test"), ("train", "val"), ("test", "val")]:
        expected = by[a] & by[b]
        assert {os.path.normpath(v) for v in index.shared_videos(a, b)} == expected
    assert index.splits_of("clips/b.mp4") == ("train", "val")
    assert set(index.split_overlaps()) == {("train", "test"), ("train", "val")}
    warnings = [w for w in index.warnings if "both split" in w]
    assert len(warnings) == 2 and "'train' and split 'test' (e.g. 'clips/a.mp4')" in warnings[0]


def test_msrvtt_7k_inside_9k_is_not_a_leak_but_a_test_video_in_9k_is(tmp_path: Path) -> None:
    folder = copy("msrvtt", tmp_path)
    assert load_dataset("msrvtt", folder, None).split_overlaps() == {}
    with (folder / "MSRVTT_train.9k.csv").open("a") as f:
        f.write("video5\n")
    data = json.loads((folder / "MSRVTT_data.json").read_text())
    data["sentences"].append({"video_id": "video5", "caption": "a plan", "sen_id": 99})
    (folder / "MSRVTT_data.json").write_text(json.dumps(data))
    index = load_dataset("msrvtt", folder, None)
    assert index.split_overlaps() == {("9k", "1k-A"): ["video5"]}
    assert any("both split '9k' and split '1k-A'" in w for w in index.warnings)


def test_split_name_that_would_nest_hdf5_groups(tmp_path: Path) -> None:
    path = tmp_path / "ann.csv"
    path.write_text("video,caption,split\na.mp4,a cat,train/extra\n")
    with pytest.raises(AnnotationError, match=r"ann\.csv: split name .train/extra. must not hold"):
        load_dataset("custom", path, None)


def test_video_files_added_between_loads_are_found(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    folder = copy("msrvtt", tmp_path)
    first = {v.id: v.path for v in load_dataset("msrvtt", folder, root).videos}
    assert first["video5"] == root / "video5.mp4"  # nothing there: the first extension
    (root / "video5.webm").write_bytes(b"")
    second = {v.id: v.path for v in load_dataset("msrvtt", folder, root).videos}
    assert second["video5"] == root / "video5.webm"
