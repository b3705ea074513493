"""A MongoDB server for local runs, tests and CI.

`resolve()` picks, in this order: `MONGODB_URI` from the environment, used
as is; a real `mongod` on PATH, started as a one-node replica set; the
SecantusDB stand-in (`secantusd-py`). Servers started here listen on
127.0.0.1 on a free port, keep their data in a temporary directory and are
stopped when the owner exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from aegis.errors import EmbeddedServerError

log = logging.getLogger(__name__)

MONGODB_URI_ENV = "MONGODB_URI"
SECANTUS_COMMAND = "secantusd-py"
MONGOD_COMMAND = "mongod"
REPLICA_SET_NAME = "rs0"
# replSetInitiate on a server that already is a replica set fails with this code.
ALREADY_INITIALIZED_CODE = 23
# SecantusDB rejects replSetInitiate with this code because it already is a
# one-node replica set.
NOT_SUPPORTED_CODE = 59

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_secantus() -> str | None:
    """Return the path of `secantusd-py`, preferring this interpreter's venv."""
    beside = Path(sys.executable).with_name(SECANTUS_COMMAND)
    if beside.exists():
        return str(beside)
    return shutil.which(SECANTUS_COMMAND)


def _die_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when its parent dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def uri_for_port(port: int) -> str:
    # directConnection keeps the driver on this address: a proxy in front of
    # the server (the harness's latency fault) must not be bypassed by
    # replica-set discovery.
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


class EmbeddedServer:
    """One server process owned by this process: start, stop, kill, restart.

    The port and data directory stay the same across restarts, so clients can
    reconnect and acknowledged writes are still there.
    """

    def __init__(
        self, kind: str, executable: str, data_dir: Path | None = None
    ) -> None:
        if kind not in ("mongod", "secantus"):
            raise ValueError(
                f"unknown server kind {kind!r}; expected 'mongod' or 'secantus'"
            )
        self.kind = kind
        self.executable = executable
        self._owns_data_dir = data_dir is None
        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix=f"aegis-{kind}-"))
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.version: str | None = None
        self._log_file: Any = None

    @property
    def uri(self) -> str:
        return uri_for_port(self.port)

    @property
    def description(self) -> str:
        name = "SecantusDB" if self.kind == "secantus" else "mongod"
        return f"{name} {self.version or '?'}"

    def _command(self) -> list[str]:
        if self.kind == "secantus":
            return [
                self.executable,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--storage-path",
                str(self.data_dir / "db"),
                "--log-level",
                "WARNING",
            ]
        (self.data_dir / "db").mkdir(parents=True, exist_ok=True)
        return [
            self.executable,
            "--replSet",
            REPLICA_SET_NAME,
            "--bind_ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dbpath",
            str(self.data_dir / "db"),
        ]

    def start(self) -> str:
        """Start the server, wait until it accepts writes, return its URI."""
        if self.running:
            return self.uri
        self._log_file = open(self.data_dir / "server.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            self._command(),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        log.info(
            "started %s at %s (pid %s)", self.description, self.uri, self.process.pid
        )
        return self.uri

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.uri, serverSelectionTimeoutMS=500, connectTimeoutMS=500
        )
        try:
            while True:
                if self.process.poll() is not None:
                    raise EmbeddedServerError(
                        f"{self.kind} exited with code {self.process.returncode} "
                        f"during start-up; see {self.data_dir / 'server.log'}"
                    )
                try:
                    client.admin.command("ping")
                    break
                except PyMongoError:
                    if time.monotonic() > deadline:
                        raise EmbeddedServerError(
                            f"{self.kind} did not respond to ping within {START_TIMEOUT_S:g} s; "
                            f"see {self.data_dir / 'server.log'}"
                        ) from None
                    time.sleep(0.1)
            self._initiate_replica_set(client, deadline)
            info = client.server_info()
            self.version = str(info.get("secantusVersion") or info.get("version"))
        finally:
            client.close()

    def _initiate_replica_set(
        self, client: MongoClient[dict[str, Any]], deadline: float
    ) -> None:
        config = {
            "_id": REPLICA_SET_NAME,
            "members": [{"_id": 0, "host": f"127.0.0.1:{self.port}"}],
        }
        try:
            client.admin.command("replSetInitiate", config)
        except OperationFailure as exc:
            if exc.code not in (ALREADY_INITIALIZED_CODE, NOT_SUPPORTED_CODE):
                raise EmbeddedServerError(f"replSetInitiate failed: {exc}") from exc
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"{self.kind} did not become PRIMARY within {START_TIMEOUT_S:g} s"
                )
            time.sleep(0.2)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        """Stop the server with SIGTERM, then SIGKILL after a timeout."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s ignored SIGTERM for %g s; killing it", self.kind, STOP_TIMEOUT_S
                )
                self.process.kill()
                self.process.wait()
        self._close_log()
        log.info("stopped %s at %s", self.description, self.uri)

    def kill(self) -> None:
        """Stop the server with SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._close_log()

    def restart(self) -> str:
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its data directory if this object made it."""
        self.stop()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def pick_server(data_dir: Path | None = None) -> EmbeddedServer:
    """Return an unstarted server: a real `mongod` if on PATH, else SecantusDB."""
    mongod = shutil.which(MONGOD_COMMAND)
    if mongod:
        return EmbeddedServer("mongod", mongod, data_dir)
    secantus = find_secantus()
    if secantus:
        return EmbeddedServer("secantus", secantus, data_dir)
    raise EmbeddedServerError(
        "no MongoDB server available: set MONGODB_URI, put mongod on PATH, or "
        "install SecantusDB (pip install SecantusDB==0.7.0b3)"
    )


@contextlib.contextmanager
def resolve(
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, EmbeddedServer | None]]:
    """Yield `(uri, server)`: `MONGODB_URI` if set (server None), else a started server."""
    environ = os.environ if env is None else env
    uri = environ.get(MONGODB_URI_ENV)
    if uri:
        yield uri, None
        return
    server = pick_server()
    try:
        server.start()
        yield server.uri, server
    finally:
        server.cleanup()
