"""A loopback TCP proxy that can delay traffic or drop connections.

Workers reach the database through the proxy when a scenario has a latency
fault. The proxy forwards bytes unchanged in both directions, one thread per
direction of each connection. While a delay is set, every chunk waits that
long before it is forwarded, so a request and its reply each take the delay
once. With a drop probability p, each new connection and each forwarded
chunk is cut with probability p: both sockets are closed, as a network
failure would.

The proxy only forwards to loopback addresses (127.0.0.0/8, `localhost`,
`::1`); `TcpProxy` raises `ValueError` for any other upstream.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import socket
import threading
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
ACCEPT_POLL_S = 0.2


def is_loopback(host: str) -> bool:
    """Return True for `localhost` and loopback IP addresses."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_host_port(uri: str) -> tuple[str, int]:
    """Return the single host and port of a `mongodb://` URI.

    Raises `ValueError` for URIs with several hosts or an SRV record, which a
    single proxy cannot stand in for.
    """
    from pymongo.uri_parser import parse_uri

    nodes: Sequence[tuple[str, int]] = parse_uri(uri)["nodelist"]
    if len(nodes) != 1:
        raise ValueError(f"expected one host in the MongoDB URI, got {len(nodes)}")
    host, port = nodes[0]
    return host, int(port)


def proxied_uri(port: int) -> str:
    """Return a URI that reaches the server through a proxy on `port`."""
    # directConnection keeps the driver on the proxy address instead of the
    # member addresses that replica-set discovery would report.
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


class TcpProxy:
    """Forward connections from a loopback port to one loopback upstream."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        *,
        listen_port: int = 0,
        rng: random.Random | None = None,
    ) -> None:
        if not is_loopback(upstream_host):
            raise ValueError(
                f"invalid upstream {upstream_host!r}: the proxy only forwards to "
                "127.0.0.0/8, localhost or ::1"
            )
        self.upstream = (upstream_host, upstream_port)
        self._listen_port = listen_port
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._delay_s = 0.0
        self._drop_probability = 0.0
        self._rng = rng or random.Random()
        self._stopped = threading.Event()
        self._accept_thread: threading.Thread | None = None
        self.connections_accepted = 0
        self.connections_dropped = 0
        self.upstream_failures = 0

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the proxy is not started")
        return int(self._listener.getsockname()[1])

    @property
    def uri(self) -> str:
        return proxied_uri(self.port)

    @property
    def delay_s(self) -> float:
        return self._delay_s

    def start(self) -> int:
        """Listen on 127.0.0.1 and return the port."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._listen_port))
        listener.listen(128)
        listener.settimeout(ACCEPT_POLL_S)
        self._listener = listener
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="proxy-accept", daemon=True
        )
        self._accept_thread.start()
        log.info("proxy listening on 127.0.0.1:%d for %s:%d", self.port, *self.upstream)
        return self.port

    def stop(self) -> None:
        """Close the listener and every open connection."""
        self._stopped.set()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        self._close_all()

    def set_delay(self, delay_s: float) -> None:
        """Delay every forwarded chunk by `delay_s` seconds (0 to stop)."""
        if delay_s < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay_s}")
        self._delay_s = delay_s
        log.info("proxy delay set to %.3f s", delay_s)

    def set_drop_probability(self, probability: float) -> None:
        """Cut each new connection and each chunk with `probability` (0 to stop)."""
        if not 0 <= probability <= 1:
            raise ValueError(f"drop probability must be in [0, 1], got {probability}")
        self._drop_probability = probability
        log.info("proxy drop probability set to %.3f", probability)

    def _should_drop(self) -> bool:
        probability = self._drop_probability
        return probability > 0 and self._rng.random() < probability

    def _close_all(self) -> int:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            _close(conn)
        return len(connections)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._should_drop():
                self.connections_dropped += 1
                _close(client)
                continue
            self.connections_accepted += 1
            threading.Thread(
                target=self._open, args=(client,), name="proxy-conn", daemon=True
            ).start()

    def _open(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError as exc:
            self.upstream_failures += 1
            # Log the first failure of an outage; the rest only count.
            level = logging.WARNING if self.upstream_failures == 1 else logging.DEBUG
            log.log(level, "proxy connection to %s:%d failed: %s", *self.upstream, exc)
            _close(client)
            return
        if self.upstream_failures:
            log.warning(
                "proxy reached %s:%d again after %d failed connections",
                *self.upstream,
                self.upstream_failures,
            )
            self.upstream_failures = 0
        upstream.settimeout(None)
        for conn in (client, upstream):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._connections.update((client, upstream))
        threading.Thread(
            target=self._pump, args=(upstream, client), daemon=True
        ).start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Copy bytes from source to target until either side closes."""
        try:
            while True:
                chunk = source.recv(CHUNK_BYTES)
                if not chunk:
                    break
                if self._should_drop():
                    self.connections_dropped += 1
                    break
                delay_s = self._delay_s
                if delay_s > 0:
                    time.sleep(delay_s)
                target.sendall(chunk)
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(target)
            _close(source)
            _close(target)


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()
