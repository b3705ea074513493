"""Fresh database servers for each measurement group.

SecantusDB gets slower as its process ages and as finished jobs pile up,
so every group starts a new server rather than sharing one.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aegis import devdb
from aegis.store import Store, connect

BENCH_DB = "aegis_bench"
REDIS_COMMAND = "redis-server"
REDIS_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MongoTarget:
    """A started MongoDB-protocol server and a store connected to it."""

    server: devdb.EmbeddedServer
    store: Store

    @property
    def uri(self) -> str:
        return self.server.uri


@contextlib.contextmanager
def mongo_server() -> Iterator[MongoTarget]:
    """Start a fresh server on a free loopback port and yield it, indexes made."""
    server = devdb.pick_server()
    server.start()
    store = connect(server.uri, BENCH_DB)
    try:
        store.ensure_indexes()
        yield MongoTarget(server, store)
    finally:
        store.close()
        server.cleanup()


def clear_jobs(store: Store) -> None:
    """Delete every job and worker document, keeping the indexes."""
    store.jobs.delete_many({})
    store.workers.delete_many({})


def find_redis() -> str | None:
    return shutil.which(REDIS_COMMAND)


@dataclass(frozen=True)
class RedisTarget:
    """A started `redis-server` process owned by the benchmark."""

    url: str
    version: str
    pid: int
    persistence: dict[str, str]  # CONFIG GET of save, appendonly, appendfsync


@contextlib.contextmanager
def redis_server(executable: str) -> Iterator[RedisTarget]:
    """Start `redis-server` on a free loopback port with its default settings.

    Only the address, port and working directory are given, so persistence
    is Redis's built-in default. The process is stopped on exit.
    """
    import redis  # imported here so the aegis steps run without it

    port = devdb.free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="aegis-bench-redis-"))
    command = [
        executable,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
    ]
    log_file = open(data_dir / "redis.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, decode_responses=True)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                info = client.info("server")
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"redis-server did not start; see {data_dir / 'redis.log'}"
                    ) from None
                time.sleep(0.05)
        persistence: dict[str, str] = {}
        for name in ("save", "appendonly", "appendfsync"):
            persistence.update(
                {str(k): str(v) for k, v in client.config_get(name).items()}
            )
        client.close()
        yield RedisTarget(url, str(info["redis_version"]), process.pid, persistence)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        shutil.rmtree(data_dir, ignore_errors=True)
