"""The loopback TCP proxy: forwarding, added delay, dropped connections."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from harness.proxy import TcpProxy, is_loopback, parse_host_port

DELAY_S = 0.2


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback server that sends back every byte it receives."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopped = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        listener.settimeout(0.1)
        while not stopped.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stopped.set()
    thread.join()
    listener.close()


@pytest.fixture
def proxy(echo_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", echo_port)
    proxy.start()
    yield proxy
    proxy.stop()


def round_trip(port: int, payload: bytes) -> tuple[bytes, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
    return received, time.monotonic() - started


def test_proxy_forwards_bytes_unchanged(proxy: TcpProxy) -> None:
    received, _ = round_trip(proxy.port, b"hello through the proxy")

    assert received == b"hello through the proxy"
    assert proxy.connections_accepted == 1


def test_proxy_delay_slows_round_trip(proxy: TcpProxy) -> None:
    _, fast_s = round_trip(proxy.port, b"ping")

    proxy.set_delay(DELAY_S)
    received, slow_s = round_trip(proxy.port, b"ping")

    assert received == b"ping"
    # The request and the reply each wait once.
    assert slow_s >= 2 * DELAY_S
    assert fast_s < DELAY_S


def test_proxy_delay_removed_on_reset(proxy: TcpProxy) -> None:
    proxy.set_delay(DELAY_S)
    proxy.set_delay(0.0)

    _, elapsed_s = round_trip(proxy.port, b"ping")

    assert elapsed_s < DELAY_S


def test_proxy_drops_all_connections(proxy: TcpProxy) -> None:
    proxy.set_drop_probability(1.0)

    received, _ = round_trip(proxy.port, b"ping")

    assert received == b""
    assert proxy.connections_dropped >= 1


def test_proxy_rejects_remote_upstream() -> None:
    with pytest.raises(ValueError, match="only forwards to"):
        TcpProxy("192.0.2.10", 27017)


def test_proxy_rejects_invalid_settings(proxy: TcpProxy) -> None:
    with pytest.raises(ValueError, match="delay"):
        proxy.set_delay(-1.0)
    with pytest.raises(ValueError, match="drop probability"):
        proxy.set_drop_probability(1.5)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("localhost", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("db.example.com", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_parse_host_port_single_host() -> None:
    host, port = parse_host_port("mongodb://127.0.0.1:27018/?directConnection=true")

    assert host == "127.0.0.1"
    assert port == 27018


def test_parse_host_port_rejects_several_hosts() -> None:
    with pytest.raises(ValueError, match="one host"):
        parse_host_port("mongodb://127.0.0.1:1,127.0.0.1:2/?replicaSet=rs0")
