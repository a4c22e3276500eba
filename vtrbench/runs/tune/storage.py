"""Where ``vtrbench tune`` keeps its studies: Optuna (imported on first use), storage URLs, study names.

Optuna is an optional extra: :func:`import_optuna` is the one place that imports it, when a study is
opened, and a missing Optuna is one line naming the extra that installs it.
"""

from __future__ import annotations

import re
import time
import warnings
from pathlib import Path
from typing import Any

from vtrbench import defaults
from vtrbench._imports import try_import
from vtrbench.errors import VtrbenchError
from vtrbench.runs.checks import check_output_file
from vtrbench.runs.tune.files import check_storage_files, damaged_text, read_only_url

STUDY_PREFIX = "vtrbench:"
ATTR = "vtrbench"  # the study's identity (user attribute)
INSTALL_HINT = "vtrbench tune needs Optuna: pip install 'vtrbench[tune]'"


def import_optuna() -> Any:
    """The optuna module, quiet below warnings; a VtrbenchError with the install hint without it."""
    optuna = try_import("optuna", hint=INSTALL_HINT)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage_url(study: Path | None, storage: str | None) -> str:
    """``--study PATH`` (SQLite file) or ``--storage URL`` (any Optuna RDB URL, or journal:FILE)."""
    if (study is None) == (storage is None):
        raise VtrbenchError("give exactly one of --study PATH.db or --storage URL")
    if study is not None:
        check_output_file(Path(study), "study")
        Path(study).parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{Path(study).resolve()}"
    assert storage is not None
    if not (storage.startswith("journal:") or "://" in storage):
        raise VtrbenchError(
            f"--storage {storage!r}: expected an Optuna storage URL (sqlite:///FILE, postgresql://..., "
            "mysql://...) or journal:FILE"
        )
    return storage


def shown_storage(url: str) -> str:
    """The storage as recorded in results: a file's name, or the URL without its password."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///") :]).name
    if url.startswith("journal:"):
        return "journal:" + Path(url[len("journal:") :]).name
    return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def open_storage(url: str, *, heartbeat: int = defaults.TUNE_HEARTBEAT, read_only: bool = False) -> Any:
    """An Optuna storage; an unreachable, damaged or unfit one is a one-line error (before any training).

    ``read_only`` (``tune --status``, ``ablate --tuned``, ``--plot``): a storage without a study is
    refused instead of being given Optuna's tables, and a SQLite file is opened with ``mode=ro``."""
    optuna = import_optuna()
    shown = shown_storage(url)
    check_storage_files(url, read_only=read_only)
    try:
        if url.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend

            path = Path(url[len("journal:") :])
            if not path.parent.is_dir():
                raise OSError(f"folder {path.parent} does not exist")
            storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
            optuna.study.get_all_study_names(storage)  # reads the whole journal: damage shows here
            return storage
        target = read_only_url(url) if read_only else url
        if read_only:
            _require_tables(target, shown)
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            # several workers write one SQLite file: wait for its lock instead of failing at once
            kwargs["engine_kwargs"] = {"connect_args": {"timeout": 120}}
        for attempt in range(5):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # heartbeats are "experimental" in Optuna since 2.9
                    storage = optuna.storages.RDBStorage(
                        target, heartbeat_interval=heartbeat, grace_period=3 * heartbeat, **kwargs
                    )
                break
            except Exception as e:  # noqa: BLE001
                # two workers creating a new database's tables at once: one loses the race, retries
                racing = any(w in str(e) for w in ("UNIQUE constraint", "already exists", "locked"))
                if not racing or attempt == 4:
                    raise
                time.sleep(0.5 + attempt)
        optuna.study.get_all_study_names(storage)  # a real round trip: the URL answers
        return storage
    except VtrbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - drivers raise anything; the user needs one line
        raise storage_failure(url, e) from None


def storage_failure(url: str, error: BaseException) -> VtrbenchError:
    """One line for an error of a storage being opened or read: a damaged file says so."""
    shown = shown_storage(url)
    damaged = damaged_text(url)
    text = " ".join(str(error).split()).lower()
    if damaged is not None and (
        # a journal line that is not JSON (JSONDecodeError), not whole, or JSON without Optuna's keys;
        # a SQLite record whose JSON payload was hit
        isinstance(error, (ValueError, KeyError, TypeError, IndexError))
        or any(w in text for w in ("malformed", "not a database", "during the commit", "corrupt"))
    ):
        return VtrbenchError(f"cannot open the study storage {shown}: {damaged}")
    first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
    return VtrbenchError(f"cannot open the study storage {shown}: {first}")


def _require_tables(url: str, shown: str) -> None:
    """A read-only command on a database without Optuna's tables: refused (RDBStorage would create them)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        found = sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()
    if not found:
        raise VtrbenchError(f"{shown} holds no vtrbench study (no Optuna tables in it)")


def cell_name(head: str, loss: str) -> str:
    """The study name of one (head, loss) cell."""
    return f"{STUDY_PREFIX}{head}+{loss}"


def vtrbench_studies(storage: Any) -> list[str]:
    """The names of the storage's vtrbench studies (other studies in it are left alone)."""
    optuna = import_optuna()
    return sorted(n for n in optuna.study.get_all_study_names(storage) if n.startswith(STUDY_PREFIX))


def storage_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a study storage raises when its server stops answering mid-study (Optuna wraps
    most SQLAlchemy errors in StorageInternalError; some reach the caller as they are)."""
    optuna = import_optuna()
    found: list[type[BaseException]] = [optuna.exceptions.StorageInternalError]
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:  # a journal-only installation
        pass
    else:
        found.append(SQLAlchemyError)
    return tuple(found)
