"""``vtrbench tune --storage postgresql://…`` against a real PostgreSQL server (issue 28).

A throw-away server is started for the session in a temporary folder (``initdb`` + ``pg_ctl``, as the
unprivileged user ``nobody`` when the tests run as root, which ``initdb`` refuses), listening on
127.0.0.1 only, on a free port; every test gets its own database. The tests skip where no
PostgreSQL server binaries or no driver (psycopg 3, SQLAlchemy's default) are installed:
``.ci/run`` installs Debian's ``postgresql`` and the ``dev`` extra brings the driver.

What they pin: four worker processes on one study finish exactly N trials; a worker killed with
``kill -9`` in the middle of a trial leaves no slot held (its trial is failed and the study still
ends at exactly N); a server stopped in the middle of a study is one clear line, and the study
resumes to exactly N once the server is back; two ``torchrun`` ranks on one two-cell study end at
exactly N per cell; ``tune --status`` on an empty database is refused without creating a table.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPACE = """
[train]
epochs = {low = 1, high = 2}
batch_size = {choices = [4, 8]}
"""


def _bin(name: str) -> str | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(folder) / name, os.X_OK):
            return str(Path(folder) / name)
    return shutil.which(name)


@dataclass
class Server:
    data: Path
    port: int
    user_cmd: list[str]  # prefix that runs a command as the server's owner

    def pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.user_cmd, _bin("pg_ctl") or "pg_ctl", "-D", str(self.data), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        done = self.pg_ctl("-o", options, "-l", str(self.data / "server.log"), "-w", "start")
        assert done.returncode == 0, done.stdout + done.stderr

    def stop(self) -> None:
        self.pg_ctl("-m", "immediate", "-w", "stop")

    def url(self, database: str) -> str:
        return f"postgresql://vtrbench@127.0.0.1:{self.port}/{database}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    pytest.importorskip("optuna")
    pytest.importorskip("psycopg", reason="no PostgreSQL driver: pip install 'vtrbench[tune-pg]'")
    initdb = _bin("initdb")
    if initdb is None or _bin("pg_ctl") is None:
        pytest.skip("no PostgreSQL server binaries (apt-get install postgresql)")
    # not under pytest's temporary folder: that one is private to root, and the server runs as nobody
    root = Path(tempfile.mkdtemp(prefix="vtrbench-pg-"))
    data = root / "data"
    user_cmd: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        user_cmd = ["runuser", "-u", "nobody", "--"]
        data.mkdir()
        shutil.chown(data, "nobody")
        os.chmod(root, 0o755)
    env = {**os.environ, "LC_ALL": "C"}
    made = subprocess.run(
        [*user_cmd, initdb, "-D", str(data), "-U", "vtrbench", "--auth=trust", "-E", "UTF8"],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"initdb failed: {made.stderr.strip()[-300:]}")
    server = Server(data, _free_port(), user_cmd)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _sql(server: Server, database: str, query: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=server.port, user="vtrbench", dbname=database) as conn:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchall() if cur.description else []


_COUNTER = iter(range(1, 10_000))


@pytest.fixture()
def database(pg_server: Server) -> str:
    import psycopg

    name = f"study{next(_COUNTER)}"
    with psycopg.connect(
        host="127.0.0.1", port=pg_server.port, user="vtrbench", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return name


def _args(cache: Path, url: str, space: Path, trials: int) -> list[str]:
    return [
        str(a)
        for a in (
            "tune", "--cache", cache, "--heads", "meanp", "--losses", "infonce", "--trials", trials,
            "--max-epochs", 2, "--val-fraction", 0.25, "--storage", url, "--space", space,
            "--device", "cpu", "--quiet", "--heartbeat", 1,
        )
    ]  # fmt: skip


def _worker(cache: Path, url: str, space: Path, trials: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "vtrbench", *_args(cache, url, space, trials)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _tune_once(cache: Path, url: str, space: Path, trials: int) -> subprocess.CompletedProcess[str]:
    """One worker run to its end (the resume after a kill or a stopped server)."""
    return subprocess.run(
        [sys.executable, "-m", "vtrbench", *_args(cache, url, space, trials)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _states(server: Server, database: str) -> dict[str, int]:
    try:
        rows = _sql(server, database, "SELECT state, COUNT(*) FROM trials GROUP BY state")
    except Exception:  # noqa: BLE001 - the schema is not there yet
        return {}
    return {str(state): int(n) for state, n in rows}


def _finished(states: dict[str, int]) -> int:
    return states.get("COMPLETE", 0) + states.get("PRUNED", 0)


def _wait_for(condition: Any, seconds: float, worker: subprocess.Popen[bytes] | None = None) -> bool:
    # polling the database, not a duration: a slow machine only waits longer
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (worker is None or worker.poll() is None):
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_four_workers_on_one_postgres_study_finish_exactly_n(
    pg_server: Server, database: str, synth_cache: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    url = pg_server.url(database)
    workers = [_worker(synth_cache, url, space, 6) for _ in range(4)]
    errors = [w.communicate(timeout=600)[1].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], errors
    states = _states(pg_server, database)
    assert _finished(states) == 6, states
    assert set(states) <= {"COMPLETE", "PRUNED", "FAIL"}, states  # a budget race is a failed trial
    ran = [int(re.search(r"(\d+) trial\(s\) run", e).group(1)) for e in errors]
    assert sum(ran) >= 6, ran


def test_kill_9_mid_trial_on_postgres_leaves_no_slot_held(
    pg_server: Server, database: str, synth_cache: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.toml"
    space.write_text(SPACE.replace("choices = [4, 8]", "choices = [2, 4]"))
    url = pg_server.url(database)
    w = _worker(synth_cache, url, space, 3)

    def running() -> bool:
        try:
            return bool(
                _sql(pg_server, database, "SELECT 1 FROM trials WHERE state = 'RUNNING' AND number >= 1")
            )
        except Exception:  # noqa: BLE001 - the schema is not there yet
            return False

    caught = _wait_for(running, 300, w)
    if caught:
        os.kill(w.pid, signal.SIGKILL)
    w.wait(timeout=60)
    if not caught:
        pytest.skip("the worker finished before a trial could be caught running")
    assert _states(pg_server, database).get("RUNNING") == 1
    done = _tune_once(synth_cache, url, space, 3)
    assert done.returncode == 0, done.stderr
    states = _states(pg_server, database)
    assert _finished(states) == 3 and states.get("FAIL") == 1 and "RUNNING" not in states, states


def test_a_server_stopped_mid_study_is_one_line_and_the_study_resumes(
    pg_server: Server, database: str, synth_cache: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    url = pg_server.url(database)
    w = _worker(synth_cache, url, space, 40)
    try:
        started = _wait_for(lambda: _finished(_states(pg_server, database)) >= 1, 300, w)
        if not started or w.poll() is not None:
            pytest.skip("the worker finished or failed before the server could be stopped mid-study")
        pg_server.stop()
        _, err = w.communicate(timeout=300)
    finally:
        if w.poll() is None:
            w.kill()
        pg_server.start()
    text = err.decode()
    assert w.returncode not in (0, None)
    assert "Traceback" not in text, text[-2000:]
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines and "error" in lines[-1].lower() and "storage" in lines[-1].lower(), text[-1000:]
    done = _tune_once(synth_cache, url, space, 4)
    assert done.returncode == 0, done.stderr
    states = _states(pg_server, database)
    assert _finished(states) >= 4 and "RUNNING" not in states, states


def _torchrun(argv: list[str], nproc: int = 2) -> subprocess.CompletedProcess[str]:
    """``torchrun --nproc-per-node N -m vtrbench ARGV`` on CPU (as tests/ground/test_shard.py runs it)."""
    with socket.socket() as s:  # a free port for the rendezvous (loopback only)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "1000"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", f"--nproc-per-node={nproc}",
           "--rdzv-backend", "c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
           "-m", "vtrbench", *argv]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_two_torchrun_ranks_on_one_postgres_study_finish_exactly_n(
    pg_server: Server, database: str, synth_cache: Path, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    if not torch.distributed.is_available():
        pytest.skip("this torch has no torch.distributed (torchrun)")
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    url = pg_server.url(database)
    args = _args(synth_cache, url, space, 5)
    args[args.index("--losses") + 1] = "infonce,dsl"  # two cells: both ranks share both
    proc = _torchrun(args)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    ran = [int(n) for n in re.findall(r"(\d+) trial\(s\) run by this worker", proc.stdout + proc.stderr)]
    assert len(ran) == 2 and sum(ran) >= 10, (ran, proc.stderr[-2000:])  # each rank said how many it ran
    rows = _sql(
        pg_server,
        database,
        "SELECT s.study_name, t.state, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "GROUP BY s.study_name, t.state",
    )
    finished: dict[str, int] = {}
    for name, state, n in rows:
        assert state in ("COMPLETE", "PRUNED", "FAIL"), rows  # nothing left RUNNING
        if state in ("COMPLETE", "PRUNED"):
            finished[str(name)] = finished.get(str(name), 0) + int(n)
    assert finished == {"vtrbench:meanp+infonce": 5, "vtrbench:meanp+dsl": 5}, rows


def test_status_of_an_empty_postgres_database_creates_no_tables(pg_server: Server, database: str) -> None:
    # a read-only command must not give an empty database Optuna's schema (RDBStorage would)
    done = subprocess.run(
        [sys.executable, "-m", "vtrbench", "tune", "--status", pg_server.url(database)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "1000"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1 and "holds no vtrbench study" in lines[0], done.stderr
    tables = _sql(pg_server, database, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert tables == [], tables
