"""``--pretrained TAG`` without a network: one clear line at once, never the hub's retry loop.

Nothing here measures time. Each test counts what was tried instead: the calls of open_clip's download
functions (must stay 0 when the weights cannot come) and the TCP connections opened (``socket.
create_connection`` replaced by a counter: 0 under ``HF_HUB_OFFLINE=1``, exactly 1 probe otherwise).
"""

from __future__ import annotations

import errno
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")
huggingface_hub = pytest.importorskip("huggingface_hub")

import open_clip  # noqa: E402
import open_clip.factory  # noqa: E402
import open_clip.pretrained  # noqa: E402

from vtrbench.errors import VtrbenchError  # noqa: E402
from vtrbench.extract import hub  # noqa: E402
from vtrbench.extract.encode import load_clip  # noqa: E402

PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, list[Any]]:
    """Every download function of open_clip and every TCP connection, counted; none succeeds.

    The hub's cache is an empty folder and no proxy is set, so the outcome does not depend on the
    machine (a network, an earlier download, a proxy)."""
    calls: dict[str, list[Any]] = {"download": [], "connect": []}

    def no_download(*args: Any, **kwargs: Any) -> Any:
        calls["download"].append(args)
        raise AssertionError("a download was tried")

    def no_connect(address: Any, *args: Any, **kwargs: Any) -> Any:
        calls["connect"].append(address)
        raise OSError(errno.ENETUNREACH, "Network is unreachable")

    for module in (open_clip.pretrained, open_clip.factory):
        for name in ("download_pretrained", "download_pretrained_from_hf", "download_pretrained_from_url"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, no_download)
    monkeypatch.setattr(socket, "create_connection", no_connect)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # open_clip's URL cache (~/.cache/clip) is empty
    for var in (*PROXY_VARS, "no_proxy", "NO_PROXY", "HF_ENDPOINT", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    return calls


def _one_error_line(r: Any) -> str:
    lines = [x for x in r.text.splitlines() if x.startswith("error:")]
    assert r.code == 2 and len(lines) == 1 and "Traceback" not in r.text, r.text
    return lines[0]


def _extract(run_cli: Any, synth_dir: Path, out: Path) -> Any:
    return run_cli("extract", "--dataset", "synthetic", "--annotations", synth_dir, "--model", "ViT-B-32",
                   "--pretrained", "openai", "--device", "cpu", "--workers", "0", "--quiet",
                   "--output", out)  # fmt: skip


def test_offline_switch_fails_at_once_naming_both_ways_on(
    counted: dict[str, list[Any]], run_cli: Any, synth_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "c.h5"
    line = _one_error_line(_extract(run_cli, synth_dir, out))
    assert counted == {"download": [], "connect": []}  # no probe either: the switch says it all
    assert "ViT-B-32/openai" in line and "HF_HUB_OFFLINE is set" in line
    assert (
        "--pretrained none" in line and "--pretrained /path/to/checkpoint.pt --preprocess-like openai" in line
    )
    assert line.endswith("--preprocess-like openai")  # the whole advice, not cut
    assert not out.exists()


def test_unreachable_hub_is_probed_once_and_never_downloaded_from(
    counted: dict[str, list[Any]], run_cli: Any, synth_dir: Path, tmp_path: Path
) -> None:
    line = _one_error_line(_extract(run_cli, synth_dir, tmp_path / "c.h5"))
    assert counted["download"] == [] and counted["connect"] == [("huggingface.co", 443)]
    assert "huggingface.co cannot be reached (Network is unreachable)" in line
    assert "no download was tried" in line and "--pretrained none" in line


def test_the_probe_goes_to_the_endpoint_or_the_proxy(counted: dict[str, list[Any]], monkeypatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    with pytest.raises(
        VtrbenchError, match=r"from http://mirror\.example:8080/timm/.*mirror\.example cannot"
    ):
        load_clip("ViT-B-32", "openai")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    with pytest.raises(VtrbenchError, match=r"the proxy proxy\.example:3128 cannot be reached"):
        load_clip("ViT-B-32", "openai")
    assert counted["connect"] == [("mirror.example", 8080), ("proxy.example", 3128)]
    assert counted["download"] == []


def test_a_stuck_name_lookup_is_given_up_after_the_timeout(monkeypatch) -> None:
    release = threading.Event()

    def stuck(*args: Any, **kwargs: Any) -> Any:
        release.wait()
        raise OSError("released")

    monkeypatch.setattr(socket, "create_connection", stuck)
    try:
        assert hub.probe("huggingface.co", 443, timeout=0.05) == "no answer within 0.05 s"
    finally:
        release.set()  # the abandoned daemon thread ends


def test_weights_downloaded_before_load_offline_without_any_network(
    counted: dict[str, list[Any]], tmp_path: Path, monkeypatch
) -> None:
    """A tag whose file is in the hub's cache loads from disk: no probe, no download, its weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from vtrbench.extract.encode import _register_configs  # the tiny model's config, for the source

    _register_configs()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        source = open_clip.create_model("vtrbench-tiny", pretrained=None)
    snapshot = Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--vtrbench--tiny-fake"
    (snapshot / "refs").mkdir(parents=True)
    (snapshot / "refs" / "main").write_text("0" * 40)
    files = snapshot / "snapshots" / ("0" * 40)
    files.mkdir(parents=True)
    torch.save(source.state_dict(), files / hub.HF_WEIGHTS_NAME)
    tags = {"fake": {"hf_hub": "vtrbench/tiny-fake/", "quick_gelu": True}}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "vtrbench-tiny", tags)
    clip = load_clip("vtrbench-tiny", "fake")
    assert counted == {"download": [], "connect": []}
    assert clip.weights_source == "pretrained tag fake" and not clip.random_weights and clip.quick_gelu
    got = clip.model.state_dict()
    assert all(torch.equal(got[k], v) for k, v in source.state_dict().items())


def test_a_long_load_error_is_shortened_between_words(monkeypatch) -> None:
    """The hub's message used to be cut at 300 characters mid-word ("check your connecti.")."""
    monkeypatch.setattr(hub, "network_problem", lambda url: None)  # the network looks fine
    monkeypatch.setattr(hub, "cached_weights", lambda cfg: None)

    sentence = "An error happened while trying to locate the file on the Hub. Please check your connection "

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(sentence * 8)

    monkeypatch.setattr(open_clip, "create_model", failing)
    with pytest.raises(VtrbenchError) as e:
        load_clip("ViT-B-32", "openai")
    msg = str(e.value)
    shortened = msg.split("could not load pretrained weights ViT-B-32/openai: ", 1)[1].split(" …", 1)[0]
    assert 200 < len(shortened) <= 300
    assert set(shortened.split()) <= set(sentence.split())  # whole words only
    assert "--pretrained none" in msg and msg.endswith("--preprocess-like openai")
