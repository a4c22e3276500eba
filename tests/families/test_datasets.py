"""Dataset loaders: real public annotation files (when present), tiny fixtures, and bad input."""

from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from vtrbench.datasets import activitynet, custom, didemo, lsmdc, msrvtt, msvd  # noqa: F401  (registers)
from vtrbench.datasets._formats import load_plain_pickle
from vtrbench.datasets.base import DATASETS, DatasetIndex
from vtrbench.errors import AnnotationError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "datasets"
# ../shared beside the repository (the main checkout), else the absolute place (a worktree).
REAL = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[3] / "shared" / "data" / "annotations",
            Path("/work/shared/data/annotations"),
        )
        if p.is_dir()
    ),
    Path(__file__).resolve().parents[3] / "shared" / "data" / "annotations",
)
REAL_LOADERS = ["msrvtt", "msvd", "lsmdc", "didemo", "activitynet"]


def load(name: str, annotations: Path | None, video_root: Path | None = None) -> DatasetIndex:
    index = DATASETS.get(name)(annotations, video_root)
    index.validate()
    return index


def real(name: str) -> Path:
    folder = REAL / name
    if not folder.is_dir():
        pytest.skip(f"real {name} annotations not present at {folder}")
    return folder


def split_captions(index: DatasetIndex, split: str) -> list[tuple[str, str]]:
    return [(index.texts[i].video, index.texts[i].caption) for i in index.splits[split].texts]


def counts(index: DatasetIndex) -> dict[str, tuple[int, int]]:
    return {k: (len(s.videos), len(s.texts)) for k, s in index.splits.items()}


def copy_fixture(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURES / name, dest)
    return dest


# --- registry and metadata ---------------------------------------------------------------------------


def test_all_loaders_registered() -> None:
    for name in [*REAL_LOADERS, "custom"]:
        assert name in DATASETS


def test_load_dataset_entry_point_validates() -> None:
    from vtrbench.datasets import load_dataset

    index = load_dataset("msvd", FIXTURES / "msvd", None)
    assert index.name == "msvd" and index.default_test == "test"


@pytest.mark.parametrize("name", REAL_LOADERS)
def test_fixture_indexes_are_documented(name: str) -> None:
    index = load(name, FIXTURES / name)
    assert index.name == name
    assert index.citation
    assert all(split.note for split in index.splits.values())
    assert index.default_test in index.splits
    assert index.default_train is None or index.default_train in index.splits


@pytest.mark.parametrize("name", REAL_LOADERS)
def test_no_split_buildable_lists_files(name: str, tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="no split could be built") as info:
        load(name, tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("name", [*REAL_LOADERS, "custom"])
def test_missing_annotation_location(name: str, tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=name):
        load(name, None)
    with pytest.raises(AnnotationError, match="does not exist"):
        load(name, tmp_path / "nowhere")


# --- MSR-VTT -----------------------------------------------------------------------------------------


def test_msrvtt_fixture_splits_and_caption_sources() -> None:
    index = load("msrvtt", FIXTURES / "msrvtt")
    assert counts(index) == {"9k": (4, 8), "7k": (2, 4), "1k-A": (2, 2)}
    assert (index.default_train, index.default_test) == ("9k", "1k-A")
    assert index.splits["9k"].videos == ("video0", "video1", "video2", "video3")
    assert index.splits["1k-A"].videos == ("video5", "video4")  # test CSV row order
    assert split_captions(index, "1k-A") == [
        ("video5", "a man, a plan and a canal"),
        ("video4", "a dog runs on the beach"),
    ]
    assert sorted(split_captions(index, "9k")) == sorted(
        (f"video{v}", f"caption {k} of video {v}") for v in range(4) for k in range(2)
    )
    # The JSON captions of the 1k-A videos are never used; 7k shares the 9k caption rows.
    assert not any("of video 4" in t.caption or "of video 5" in t.caption for t in index.texts)
    assert set(index.splits["7k"].texts) <= set(index.splits["9k"].texts)
    assert len(index.texts) == 8 + 2
    assert index.warnings == []


def test_msrvtt_video_paths_prefer_mp4_then_webm(tmp_path: Path) -> None:
    (tmp_path / "video4.webm").touch()
    (tmp_path / "video5.mp4").touch()
    (tmp_path / "video5.webm").touch()
    index = load("msrvtt", FIXTURES / "msrvtt", tmp_path)
    paths = {v.id: v.path for v in index.videos}
    assert paths["video4"] == tmp_path / "video4.webm"
    assert paths["video5"] == tmp_path / "video5.mp4"
    assert paths["video0"] == tmp_path / "video0.mp4"  # missing files keep the first extension
    default_root = load("msrvtt", FIXTURES / "msrvtt")
    assert {v.path for v in default_root.videos} == {FIXTURES / "msrvtt" / f"video{i}.mp4" for i in range(6)}


def test_msrvtt_without_captions_json_builds_only_1k_a(tmp_path: Path) -> None:
    folder = copy_fixture("msrvtt", tmp_path)
    (folder / "MSRVTT_data.json").unlink()
    index = load("msrvtt", folder)
    assert list(index.splits) == ["1k-A"]
    assert index.default_train is None
    assert any("MSRVTT_data.json" in w for w in index.warnings)


def test_msrvtt_csv_without_video_id_column(tmp_path: Path) -> None:
    folder = copy_fixture("msrvtt", tmp_path)
    (folder / "MSRVTT_train.9k.csv").write_text("vid\nvideo0\n")
    with pytest.raises(AnnotationError, match=r"MSRVTT_train\.9k\.csv, line 1: .*video_id"):
        load("msrvtt", folder)


def test_msrvtt_json_of_wrong_shape(tmp_path: Path) -> None:
    folder = copy_fixture("msrvtt", tmp_path)
    path = folder / "MSRVTT_data.json"
    data = json.loads(path.read_text())
    del data["sentences"][3]["caption"]
    path.write_text(json.dumps(data))
    with pytest.raises(AnnotationError, match=r"MSRVTT_data\.json: sentences\[3\]\.caption"):
        load("msrvtt", folder)
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(AnnotationError, match=r"MSRVTT_data\.json: top level"):
        load("msrvtt", folder)
    path.write_text('{"sentences": [\n{"video_id": "video0",\n}]}')
    with pytest.raises(AnnotationError, match=r"MSRVTT_data\.json: invalid JSON at line 3"):
        load("msrvtt", folder)


def test_msrvtt_real_1k_a() -> None:
    index = load("msrvtt", real("msrvtt"))
    assert counts(index)["1k-A"] == (1000, 1000)
    assert index.splits["1k-A"].note.startswith("JSFusion 1k-A")
    assert split_captions(index, "1k-A")[0] == ("video9770", "a person is connecting something to system")


def test_msrvtt_real_train_splits_with_generated_captions(tmp_path: Path) -> None:
    source = real("msrvtt")
    if (source / "MSRVTT_data.json").is_file():
        folder = source
    else:
        # The real captions file is not available; give each video 20 generated captions so the
        # split sizes come from the real CSVs.
        folder = tmp_path / "msrvtt"
        folder.mkdir()
        for name in ("MSRVTT_train.9k.csv", "MSRVTT_train.7k.csv", "MSRVTT_JSFUSION_test.csv"):
            (folder / name).symlink_to(source / name)
        sentences = [
            {"video_id": f"video{v}", "caption": f"caption {k} of video {v}", "sen_id": 20 * v + k}
            for v in range(10000)
            for k in range(20)
        ]
        (folder / "MSRVTT_data.json").write_text(json.dumps({"videos": [], "sentences": sentences}))
    index = load("msrvtt", folder)
    assert counts(index) == {"9k": (9000, 180_000), "7k": (7010, 140_200), "1k-A": (1000, 1000)}
    assert set(index.splits["9k"].videos) | set(index.splits["1k-A"].videos) == {
        f"video{v}" for v in range(10000)
    }
    assert len(index.videos) == 10000
    assert len(index.texts) == 180_000 + 1000


# --- MSVD --------------------------------------------------------------------------------------------


def test_msvd_fixture_json_captions() -> None:
    index = load("msvd", FIXTURES / "msvd")
    assert counts(index) == {"train": (2, 4), "val": (1, 2), "test": (2, 3)}
    assert (index.default_train, index.default_test) == ("train", "test")
    # Repeated captions of one video stay separate queries.
    assert split_captions(index, "train") == [
        ("vidA_1_5", "a cat plays"),
        ("vidA_1_5", "a cat is playing"),
        ("vidA_1_5", "a cat plays"),
        ("vidB_2_9", "a man cooks"),
    ]
    assert all(v.id != "unused_0_1" for v in index.videos)
    assert index.videos[0].path == FIXTURES / "msvd" / "vidA_1_5.avi"


def test_msvd_pickle_tokens_joined_and_preferred(tmp_path: Path) -> None:
    folder = copy_fixture("msvd", tmp_path)
    captions = {
        "vidA_1_5": [["a", "cat", "plays"]],
        "vidB_2_9": [("a", "man", "cooks"), ["he", "fries", "eggs"]],
        "vidC_0_3": [["someone", "sings"]],
        "vidD_4_8": [["a", "car"]],
        "vidE_1_2": [["a", "bird"]],
    }
    (folder / "raw-captions.pkl").write_bytes(pickle.dumps(captions, protocol=2))
    (folder / "vidB_2_9.mp4").touch()
    index = load("msvd", folder)
    assert split_captions(index, "train") == [
        ("vidA_1_5", "a cat plays"),
        ("vidB_2_9", "a man cooks"),
        ("vidB_2_9", "he fries eggs"),
    ]
    paths = {v.id: v.path for v in index.videos}
    assert paths["vidB_2_9"] == folder / "vidB_2_9.mp4" and paths["vidA_1_5"] == folder / "vidA_1_5.avi"


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch '{self.marker}'",))


def test_pickle_with_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    payload = pickle.dumps({"vid": _RunsShell(marker)})
    assert b"system" in payload  # the payload really carries the call
    path = tmp_path / "raw-captions.pkl"
    path.write_bytes(payload)
    with pytest.raises(AnnotationError, match=r"raw-captions\.pkl: refused .*system"):
        load_plain_pickle(path)
    assert not marker.exists()
    folder = copy_fixture("msvd", tmp_path)
    shutil.copy(path, folder / "raw-captions.pkl")
    with pytest.raises(AnnotationError, match="refused"):
        load("msvd", folder)
    assert not marker.exists()


def test_plain_pickle_accepts_containers_and_refuses_other_types(tmp_path: Path) -> None:
    path = tmp_path / "p.pkl"
    plain = {"a": [["x", "y"], ("z",)], "b": []}
    path.write_bytes(pickle.dumps(plain, protocol=2))
    assert load_plain_pickle(path) == plain
    path.write_bytes(pickle.dumps({"a": {1, 2}}, protocol=2))  # protocol 2 builds sets via a global
    with pytest.raises(AnnotationError, match=r"builtin_*\.set;"):
        load_plain_pickle(path)
    path.write_bytes(b"not a pickle")
    with pytest.raises(AnnotationError, match=r"p\.pkl"):
        load_plain_pickle(path)


def test_msvd_pickle_of_wrong_shape(tmp_path: Path) -> None:
    folder = copy_fixture("msvd", tmp_path)
    (folder / "raw-captions.pkl").write_bytes(pickle.dumps({"vidA_1_5": ["a cat plays"]}))
    with pytest.raises(AnnotationError, match=r"raw-captions\.pkl: key 'vidA_1_5', caption 0"):
        load("msvd", folder)


def test_msvd_missing_list_warns(tmp_path: Path) -> None:
    folder = copy_fixture("msvd", tmp_path)
    (folder / "val_list.txt").unlink()
    index = load("msvd", folder)
    assert list(index.splits) == ["train", "test"]
    assert any("val_list.txt" in w for w in index.warnings)


def test_msvd_real_counts() -> None:
    index = load("msvd", real("msvd"))
    assert counts(index) == {"train": (1200, 48_774), "val": (100, 4_290), "test": (670, 27_763)}
    assert index.warnings == []


# --- LSMDC -------------------------------------------------------------------------------------------


def test_lsmdc_fixture_quotes_and_movie_folders() -> None:
    index = load("lsmdc", FIXTURES / "lsmdc")
    assert counts(index) == {"train": (2, 2), "val": (1, 1), "test": (2, 2)}
    assert (index.default_train, index.default_test) == ("train", "test")
    assert split_captions(index, "train") == [
        ("0001_American_Beauty_00.00.51.926-00.00.54.129", 'SOMEONE says "hello," then leaves.'),
        ("0001_American_Beauty_00.01.02.000-00.01.04.500", 'The "Lester" sign\tfalls.'),
    ]
    assert split_captions(index, "test")[1][1] == '"Stop," SOMEONE says.'
    paths = {v.id: v.path for v in index.videos}
    clip = "3086_UGLY_TRUTH_00.23.23.000-00.23.28.886"
    assert paths[clip] == FIXTURES / "lsmdc" / "3086_UGLY_TRUTH" / f"{clip}.avi"
    juno = "1004_Juno_00.00.10.000-00.00.12.000"
    assert paths[juno] == FIXTURES / "lsmdc" / "1004_Juno" / f"{juno}.avi"


def test_lsmdc_only_test_file(tmp_path: Path) -> None:
    folder = tmp_path / "lsmdc"
    folder.mkdir()
    shutil.copy(FIXTURES / "lsmdc" / "LSMDC16_challenge_1000_publictect.csv", folder)
    index = load("lsmdc", folder)
    assert list(index.splits) == ["test"]
    assert index.default_train is None
    assert len(index.warnings) == 2


def test_lsmdc_short_line(tmp_path: Path) -> None:
    folder = copy_fixture("lsmdc", tmp_path)
    path = folder / "LSMDC16_annos_val.csv"
    path.write_text(path.read_text() + "1004_Juno_00.00.20.000-00.00.22.000\t00.00.20.000\tno sentence\n")
    with pytest.raises(AnnotationError, match=r"LSMDC16_annos_val\.csv, line 2: 3 tab-separated"):
        load("lsmdc", folder)


def test_lsmdc_real_test() -> None:
    index = load("lsmdc", real("lsmdc"))
    assert counts(index)["test"] == (1000, 1000)
    clip = "3086_UGLY_TRUTH_00.23.23.000-00.23.28.886"
    assert index.videos[0].id == clip
    assert index.videos[0].path.parent.name == "3086_UGLY_TRUTH"
    assert split_captions(index, "test")[0][1] == "SOMEONE stands below, hands on her hips."


# --- DiDeMo ------------------------------------------------------------------------------------------


def test_didemo_paragraphs_in_json_order() -> None:
    index = load("didemo", FIXTURES / "didemo")
    assert counts(index) == {"train": (1, 1), "val": (1, 1), "test": (2, 2)}
    assert (index.max_words, index.max_frames, index.paragraph) == (64, 64, True)
    odd = "10052357@N03_7585070382_5762149bfc."
    mov = "11111111@N01_1111111111_aaaaaaaaaa.mov"
    assert split_captions(index, "test") == [
        (odd, "a man waves."),
        (mov, "the dog barks. the dog sits down the dog runs away."),
    ]
    assert split_captions(index, "train") == [
        ("44444444@N04_4444444444_dddddddddd.mp4", "people dance. music stops.")
    ]
    paths = {v.id: v.path for v in index.videos}
    assert paths[odd] == FIXTURES / "didemo" / odd
    assert any("1 of 3 videos of test_list.txt" in w for w in index.warnings)


def test_didemo_wrong_shape(tmp_path: Path) -> None:
    folder = copy_fixture("didemo", tmp_path)
    (folder / "val_data.json").write_text(json.dumps({"video": "x"}))
    with pytest.raises(AnnotationError, match=r"val_data\.json: top level"):
        load("didemo", folder)
    (folder / "val_data.json").write_text(json.dumps([{"video": "x", "times": []}]))
    with pytest.raises(AnnotationError, match=r"val_data\.json: item 0, key 'description'"):
        load("didemo", folder)


def test_didemo_real() -> None:
    index = load("didemo", real("didemo"))
    observed = counts(index)
    assert observed["test"] == (1004, 1004)
    assert observed["val"] == (1065, 1065)
    assert index.default_test == "test"
    if not (real("didemo") / "train_data.json").is_file():
        assert "train" not in index.splits and index.default_train is None
        assert any("train_data.json" in w for w in index.warnings)
    assert "10052357@N03_7585070382_5762149bfc." in index.splits["test"].videos


# --- ActivityNet -------------------------------------------------------------------------------------


def test_activitynet_fixture_paragraphs_and_skips(tmp_path: Path) -> None:
    (tmp_path / "fffffffffff.mkv").touch()
    index = load("activitynet", FIXTURES / "activitynet", tmp_path)
    assert counts(index) == {"train": (2, 2), "val_1": (2, 2)}
    assert (index.default_train, index.default_test) == ("train", "val_1")
    assert index.paragraph and index.max_words == 64 and index.max_frames == 64
    assert split_captions(index, "train") == [
        ("v_aaaaaaaaaaa", "A man enters. He sits down."),
        ("v_-bbbbbbbbbb", "A woman is knitting."),
    ]
    assert split_captions(index, "val_1")[0] == ("v_ddddddddddd", "Kids play. A ball flies. They cheer.")
    paths = {v.id: v.path for v in index.videos}
    assert paths["v_-bbbbbbbbbb"] == tmp_path / "-bbbbbbbbbb.mp4"
    assert paths["v_fffffffffff"] == tmp_path / "fffffffffff.mkv"
    assert any("1 of 3 ids in train_ids.json" in w for w in index.warnings)
    assert any("1 of 3 ids in val_ids.json" in w for w in index.warnings)


def test_activitynet_wrong_shape(tmp_path: Path) -> None:
    folder = copy_fixture("activitynet", tmp_path)
    (folder / "val_1.json").write_text(json.dumps({"v_x": {"sentences": "A dog."}}))
    with pytest.raises(AnnotationError, match=r"val_1\.json: key 'v_x', \"sentences\""):
        load("activitynet", folder)
    (folder / "val_ids.json").write_text(json.dumps({"v_x": 1}))
    with pytest.raises(AnnotationError, match=r"val_ids\.json: top level"):
        load("activitynet", folder)


def test_activitynet_real() -> None:
    index = load("activitynet", real("activitynet"))
    assert counts(index) == {"train": (10_009, 10_009), "val_1": (4917, 4917)}


# --- custom ------------------------------------------------------------------------------------------


def test_custom_csv_with_splits(tmp_path: Path) -> None:
    path = FIXTURES / "custom" / "split.csv"
    index = load("custom", path)
    assert counts(index) == {"train": (1, 2), "test": (1, 1), "all": (1, 1)}
    assert (index.default_train, index.default_test) == ("train", "test")
    assert split_captions(index, "train") == [
        ("clips/cat.mp4", "a cat jumps onto a table"),
        ("clips/cat.mp4", "a cat, jumping"),
    ]
    assert {v.id: v.path for v in index.videos}["clips/dog.mp4"] == path.parent / "clips" / "dog.mp4"
    other = load("custom", path, tmp_path)
    assert {v.id: v.path for v in other.videos}["clips/dog.mp4"] == tmp_path / "clips" / "dog.mp4"


def test_custom_jsonl_without_splits_and_absolute_paths(tmp_path: Path) -> None:
    index = load("custom", FIXTURES / "custom" / "nosplit.jsonl")
    assert counts(index) == {"all": (2, 3)}
    assert (index.default_train, index.default_test) == (None, "all")

    absolute = tmp_path / "elsewhere" / "clip one.mp4"
    path = tmp_path / "ann" / "data.jsonl"
    path.parent.mkdir()
    rows = [
        {"video": str(absolute), "caption": "absolute", "split": "test"},
        {"video": "rel/clip.mp4", "caption": "relative", "split": "train"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    index = load("custom", path.parent)  # a folder holding exactly one annotation file
    paths = {v.id: v.path for v in index.videos}
    assert paths == {str(absolute): absolute, "rel/clip.mp4": path.parent / "rel" / "clip.mp4"}
    root = tmp_path / "videos"
    assert {v.id: v.path for v in load("custom", path, root).videos}["rel/clip.mp4"] == root / "rel/clip.mp4"


def test_custom_csv_absolute_path(tmp_path: Path) -> None:
    absolute = tmp_path / "v" / "a.mp4"
    path = tmp_path / "ann.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["video", "caption"], [str(absolute), "a clip"]])
    index = load("custom", path, tmp_path / "unused")
    assert index.videos[0].path == absolute and index.videos[0].id == str(absolute)


def test_custom_csv_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("video,text\na.mp4,a cat\n")
    with pytest.raises(
        AnnotationError, match=r"bad\.csv, line 1: header 'video,text' lacks column\(s\) caption"
    ):
        load("custom", path)
    path.write_text("video,caption\na.mp4,a cat\nb.mp4\n")
    with pytest.raises(AnnotationError, match=r"bad\.csv, line 3"):
        load("custom", path)
    path.write_text("video,caption\na.mp4,a cat\n\nb.mp4,\n")
    with pytest.raises(AnnotationError, match=r"bad\.csv, line 4: empty 'caption'"):
        load("custom", path)


def test_custom_jsonl_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"video": "a.mp4", "caption": "x"}\n{"video": "b.mp4"}\n')
    with pytest.raises(AnnotationError, match=r"bad\.jsonl, line 2: key 'caption'"):
        load("custom", path)
    path.write_text('{"video": "a.mp4", "caption": "x"}\n\n{"video": "b.mp4", caption: "y"}\n')
    with pytest.raises(AnnotationError, match=r"bad\.jsonl, line 3: invalid JSON"):
        load("custom", path)
    path.write_text('["a.mp4", "x"]\n')
    with pytest.raises(AnnotationError, match=r"bad\.jsonl, line 1: expected a JSON object"):
        load("custom", path)


def test_custom_file_discovery_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match=r"exactly one .* \(found: nosplit\.jsonl, split\.csv\)"):
        load("custom", FIXTURES / "custom")
    (tmp_path / "notes.txt").write_text("video,caption\n")
    with pytest.raises(AnnotationError, match="neither .csv nor .jsonl"):
        load("custom", tmp_path / "notes.txt")
    with pytest.raises(AnnotationError, match="found: none"):
        load("custom", tmp_path)
    (tmp_path / "empty.csv").write_text("video,caption\n")
    with pytest.raises(AnnotationError, match=r"empty\.csv: no video,caption rows"):
        load("custom", tmp_path / "empty.csv")
