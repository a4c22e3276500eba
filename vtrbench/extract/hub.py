"""Pretrained weights named by a tag (``--pretrained openai``): found locally first, the network checked once.

open_clip downloads a tag's weights from the Hugging Face hub (or a URL), and ``huggingface_hub``
retries an unreachable host with back-off: offline, ``--pretrained openai`` spent ~1 minute in ~20
lines of retry warnings before failing. Here, before open_clip is asked to download anything:

1. a copy already downloaded (the hub's cache, or open_clip's URL cache) is loaded from disk, with no
   network call at all (:func:`cached_weights`);
2. otherwise ``HF_HUB_OFFLINE=1`` (the hub's own switch) means no download is tried, and
3. otherwise one TCP connection to the host (or to the HTTPS proxy the environment names) is tried
   with a :data:`vtrbench.defaults.HUB_PROBE_TIMEOUT` second limit (:func:`network_problem`).

When the weights cannot come, the error is one line naming ``--pretrained none`` (a trial run with
random weights) and ``--pretrained /path/to/checkpoint.pt --preprocess-like TAG`` (a file downloaded
elsewhere). A host that answers the probe but fails later still goes through the hub's own retries.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from vtrbench._imports import try_import
from vtrbench.defaults import HUB_PROBE_TIMEOUT
from vtrbench.errors import VtrbenchError

HF_DEFAULT_ENDPOINT = "https://huggingface.co"
TRUE_WORDS = ("1", "on", "yes", "true")
# open_clip's names for a hub repository's weights (open_clip.constants), tried safetensors first as
# open_clip itself does
HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"


def offline_by_env() -> bool:
    """``HF_HUB_OFFLINE`` is set to a true value (the hub's own offline switch)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_WORDS


def weights_url(cfg: dict[str, Any]) -> str:
    """The URL open_clip would download a pretrained config's weights from (hub preferred, as open_clip)."""
    if cfg.get("hf_hub"):
        endpoint = os.environ.get("HF_ENDPOINT", "").strip() or HF_DEFAULT_ENDPOINT
        return endpoint.rstrip("/") + "/" + str(cfg["hf_hub"])
    return str(cfg.get("url", ""))


def _hub_candidates(hf_hub: str) -> tuple[str, list[str]]:
    """(repository id, file names open_clip tries in that order) of an ``org/repo/[file]`` entry."""
    repo, filename = os.path.split(hf_hub)
    filename = filename or HF_WEIGHTS_NAME
    names = []
    if filename == HF_WEIGHTS_NAME:
        names.append(HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.append(filename[:-4] + ".safetensors")
    return repo, [*names, filename]


def cached_weights(cfg: dict[str, Any]) -> str | None:
    """The local file of a tag's weights when it was downloaded before, else None; no network call.

    The hub's cache is read with ``huggingface_hub.try_to_load_from_cache`` (files only:
    ``hf_hub_download(local_files_only=True)`` may still fetch the hub's agent registry).
    """
    if cfg.get("file"):
        return str(cfg["file"]) if Path(str(cfg["file"])).is_file() else None
    if cfg.get("hf_hub"):
        try:
            hf = try_import("huggingface_hub")
        except VtrbenchError:
            return None  # open_clip then uses the URL, as it does without the hub's package
        repo, names = _hub_candidates(str(cfg["hf_hub"]))
        for name in names:
            found = hf.try_to_load_from_cache(repo_id=repo, filename=name)
            if isinstance(found, str) and Path(found).is_file():
                return found
        return None
    url = str(cfg.get("url", ""))
    if url:
        # open_clip's URL cache; it checks the file's sha256 itself when it finds it there
        local = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        return str(local) if local.is_file() else None
    return None


def _proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (``https_proxy``, ``all_proxy``, ``no_proxy``)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


def probe(host: str, port: int, timeout: float) -> str | None:
    """None when a TCP connection to ``host:port`` opens within ``timeout`` seconds, else why not.

    The connection (and the name lookup, which has no timeout of its own) runs in a daemon thread that
    is abandoned after ``timeout``: a stuck DNS server cannot hold the command.
    """
    answer: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answer.append(None)
        except OSError as e:
            answer.append(e.strerror or type(e).__name__)

    worker = threading.Thread(target=connect, name="vtrbench-hub-probe", daemon=True)
    worker.start()
    worker.join(timeout)
    if not answer:
        return f"no answer within {timeout:g} s"
    return answer[0]


def network_problem(url: str, timeout: float = HUB_PROBE_TIMEOUT) -> str | None:
    """Why ``url`` cannot be downloaded now (offline switch, host unreachable), or None when it may be."""
    if offline_by_env():
        return "HF_HUB_OFFLINE is set"
    proxy = _proxy(url)
    target = urllib.parse.urlsplit(proxy if proxy else url)
    if not target.hostname:
        return None  # nothing to probe: let the downloader report
    port = target.port or (443 if target.scheme == "https" else 80)
    problem = probe(target.hostname, port, timeout)
    if problem is None:
        return None
    via = f"the proxy {target.hostname}:{port}" if proxy else f"{target.hostname}"
    return f"{via} cannot be reached ({problem})"


class WeightsUnavailable(VtrbenchError):
    """A tag's weights are not on disk and cannot be downloaded now; ``str()`` is the whole advice."""

    def __init__(self, model: str, tag: str, url: str, problem: str) -> None:
        self.model, self.tag, self.url, self.problem = model, tag, url, problem
        super().__init__(
            f"{self.what()}. For a trial run with random weights use --pretrained none; to use a "
            f"checkpoint file downloaded elsewhere pass --pretrained /path/to/checkpoint.pt "
            f"--preprocess-like {tag}"
        )

    def what(self) -> str:
        """What failed and why, without the advice (callers with other options add their own)."""
        where = f" from {self.url}" if self.url else ""
        return (
            f"cannot download the pretrained weights {self.model}/{self.tag}{where}: {self.problem}; "
            "no download was tried"
        )
