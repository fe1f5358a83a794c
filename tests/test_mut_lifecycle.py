"""Running a server (rcmd/server/lifecycle.py) in-process: serve() until a signal, on this
test's own event loop in the main thread (the signal is sent to this process, the loop's
handler takes it); ServerThread and BackgroundServer starting, failing to start, closing.
Real sockets on 127.0.0.1, real commands. serve() gets a recording stand-in for the
process-wide tracker: the real one would make this test process a subreaper and kill every
child it has at close (test_mut_process.py tests that part).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator

import pytest
from _mutserver import ServerLog, capture
from conftest import wait_gone

import rcmd
from rcmd.server import BackgroundServer, ServerConfig, lifecycle
from rcmd.server.lifecycle import ServerThread, serve


@pytest.fixture
def server_log() -> Iterator[ServerLog]:
    """The server's log lines at INFO and above (conftest's is at DEBUG)."""
    with capture(logging.INFO) as handler:
        yield handler


def refused(address: tuple[str, int]) -> bool:
    """Whether nothing listens on *address* any more."""
    try:
        socket.create_connection(address, timeout=15).close()
    except ConnectionRefusedError:
        return True
    return False


class Tracker:
    """Stands in for rcmd.process.tracker in serve(): records its calls, and whether the
    server still listened when it was closed."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.address: tuple[str, int] | None = None

    def start(self, *, subreaper: bool, cgroups: bool = False) -> str:
        self.calls.append(("start", subreaper, cgroups))
        return "killing a command's processes: as a test says"

    def close(self) -> None:
        assert self.address is not None
        self.calls.append(("close", refused(self.address)))


@pytest.fixture
def tracker(monkeypatch: pytest.MonkeyPatch) -> Tracker:
    fake = Tracker()
    monkeypatch.setattr(lifecycle, "tracker", fake)
    return fake


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_until_a_signal_then_closes(tracker, server_log, sig, tmp_path):
    replies: list[object] = []

    def client(host: str, port: int) -> None:
        try:
            with rcmd.connect(host, port) as connection:
                replies.append(connection.run("echo served; pwd").stdout)
        except BaseException as exc:  # said by the test, below
            replies.append(exc)
        os.kill(os.getpid(), sig)

    def on_ready(host: str, port: int) -> None:
        tracker.address = (host, port)
        threading.Thread(target=client, args=(host, port)).start()

    asyncio.run(serve(ServerConfig(port=0, encoding="utf-8", cwd=str(tmp_path)), on_ready=on_ready))
    assert replies == [b"served\n" + str(tmp_path).encode() + b"\n"]  # as configured
    assert tracker.calls == [("start", True, False), ("close", True)]  # closed before the tracker
    assert tracker.address is not None
    assert tracker.address[0] == "127.0.0.1"
    assert "killing a command's processes: as a test says" in server_log.lines
    assert server_log.lines.index("signal received: stopping") > server_log.lines.index(
        "killing a command's processes: as a test says"
    )


def test_serve_puts_what_is_loaded_out_of_the_cyclic_gcs_sight(tracker, server_log):
    """Modules, classes and the server's own objects live as long as the process: frozen, so
    that a full collection during a flood of connections walks only what they made."""
    frozen: list[int] = []

    def on_ready(host: str, port: int) -> None:
        frozen.append(gc.get_freeze_count())
        tracker.address = (host, port)
        os.kill(os.getpid(), signal.SIGTERM)

    gc.unfreeze()
    try:
        asyncio.run(serve(ServerConfig(port=0), on_ready=on_ready))
    finally:
        gc.unfreeze()  # the objects of this test process are the GC's again
    assert len(frozen) == 1
    assert frozen[0] > 10_000


def test_serve_without_on_ready_asks_the_tracker_for_cgroups_as_configured(tracker, server_log):
    """No on_ready: the test sends the signal once serve() has its handler (a loop turn)."""

    async def main() -> None:
        original = signal.getsignal(signal.SIGTERM)
        serving = asyncio.create_task(serve(ServerConfig(port=0, cgroups=True)))
        while signal.getsignal(signal.SIGTERM) is original:  # turns of the loop, not time
            assert not serving.done(), serving
            await asyncio.sleep(0)
        line = next(line for line in server_log.lines if line.startswith("listening on "))
        host, port = line.split()[2].rsplit(":", 1)
        tracker.address = (host, int(port))
        assert not refused(tracker.address)
        os.kill(os.getpid(), signal.SIGTERM)
        await serving

    asyncio.run(main())
    assert tracker.calls == [("start", True, True), ("close", True)]
    assert "signal received: stopping" in server_log.lines


def test_a_background_server_before_during_and_after(server_log):
    server = BackgroundServer(encoding="utf-8")
    assert server.address == ("", 0)
    assert server.config.port == 0
    assert server.config.encoding == "utf-8"
    server.close()  # not started: nothing to do
    with server as entered:
        assert entered is server
        host, port = server.address
        assert host == "127.0.0.1"
        assert port > 0
        thread = server._thread
        assert thread is not None
        assert thread.name == "rcmd-server"
        assert thread.daemon
        assert thread.is_alive()
        with rcmd.connect(host, port) as client:
            assert client.run("echo up").stdout == b"up\n"
    assert not thread.is_alive()
    assert server._loop.is_closed()
    assert server.address == (host, port)  # kept after close, for messages
    assert refused((host, port))
    server.close()  # again: nothing to do


def test_a_background_server_takes_a_config(tmp_path):
    config = ServerConfig(port=0, encoding="utf-8", cwd=str(tmp_path))
    with BackgroundServer(config) as server:
        assert server.config is config
        with rcmd.connect(*server.address) as client:
            assert client.run("pwd").stdout == str(tmp_path).encode() + b"\n"


def test_start_returns_self():
    server = BackgroundServer()
    try:
        assert server.start() is server
    finally:
        server.close()


def test_a_server_that_cannot_listen_raises_from_start_and_its_thread_ends():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = BackgroundServer(port=taken.getsockname()[1])
        with pytest.raises(OSError, match="in use") as failure:
            server.start()
        assert failure.value.errno == 98  # EADDRINUSE
    assert server._thread is not None
    assert not server._thread.is_alive()
    assert server._loop.is_closed()
    assert server.address == ("", 0)


def test_servers_started_before_one_that_fails_are_closed_again():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        farm = ServerThread([ServerConfig(port=0), ServerConfig(port=0), ServerConfig(port=port)])
        with pytest.raises(OSError, match="in use"):
            farm.start()
    assert len(farm._addresses) == 2
    assert all(refused(address) for address in farm._addresses)
    assert farm._thread is not None
    assert not farm._thread.is_alive()


def test_several_servers_on_one_thread_all_serve_and_all_close():
    with ServerThread(
        [ServerConfig(port=0, encoding="utf-8"), ServerConfig(port=0, framing="naive")]
    ) as farm:
        prefixed, naive = farm._addresses
        with rcmd.connect(*prefixed) as client:
            assert client.run("echo one").stdout == b"one\n"
        with rcmd.NaiveClient.connect(*naive) as client:
            assert client.run("echo two").stdout == b"two\n"
    assert refused(prefixed)
    assert refused(naive)


def test_close_kills_a_running_command(tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    server = BackgroundServer(framing="naive").start()
    try:
        with socket.create_connection(server.address, timeout=15) as sock:
            sock.sendall(f"exec 3>{gate}; sleep 60".encode())
            with open(gate, "rb") as reader:  # the command runs
                server.close()
                assert reader.read() == b""  # no writer left: its group was killed
    finally:
        server.close()


def test_close_kills_what_an_ended_command_left_behind():
    with BackgroundServer(encoding="utf-8") as server, rcmd.connect(*server.address) as client:
        # Its own session: the group kill misses it, the environment cookie does not.
        pid = int(client.run("setsid sleep 60 </dev/null >/dev/null 2>&1 & echo $!").stdout)
    assert wait_gone(pid)
