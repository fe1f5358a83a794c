"""rcmd.Group: one command on many real servers (a ServerFarm on loopback), with dead,
silent and slow hosts among them. No timing: concurrency and "never held up" are shown by
the order of events."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from pathlib import Path

import pytest
from conftest import children_of, wait_until

import rcmd
from rcmd.errors import ProtocolMismatch
from rcmd.group import Group, HostDone, HostOutput
from rcmd.messages import Hello, Stdout
from rcmd.protocol import Connection, Role
from rcmd.server.farm import ServerFarm


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """20 servers, each starting commands in a directory of its own: `pwd` names the server."""
    root = tmp_path_factory.mktemp("farm")
    for index in range(20):
        (root / f"s{index:02d}").mkdir()
    with ServerFarm(20, encoding="utf-8", per_server=lambda i: {"cwd": str(root / f"s{i:02d}")}) as farm:
        yield farm


def closed_port() -> int:
    """A loopback port nothing listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_host_answers_exactly_in_the_order_given(farm):
    hosts = list(reversed(farm.hosts))
    results = Group(hosts).run("pwd")
    assert list(results) == hosts
    for host, config in zip(farm.hosts, farm.configs, strict=True):
        result = results[host]
        assert isinstance(result, rcmd.CompletedCommand)
        assert (result.returncode, result.stdout_text) == (0, f"{config.cwd}\n")


def test_host_set_syntax_with_ports(farm):
    ports = sorted(port for _, port in farm.addresses[:3])
    spec = ",".join(f"127.0.0.1:{port}" for port in ports)
    group = Group(spec)
    assert group.hosts == [f"127.0.0.1:{port}" for port in ports]
    folded = Group(f"127.0.0.[1-1]:{ports[0]}", port=1)
    assert folded.hosts == [f"127.0.0.1:{ports[0]}"]
    assert folded.run("echo ok")[f"127.0.0.1:{ports[0]}"].stdout == b"ok\n"  # type: ignore[union-attr]


def test_input_goes_to_every_host_and_fanout_one_still_reaches_all(farm):
    results = Group(farm.hosts[:5], fanout=1).run("cat; echo", input="same\n")
    assert [r.stdout for r in results.values()] == [b"same\n\n"] * 5  # type: ignore[union-attr]


def test_dead_silent_and_slow_hosts_each_get_their_own_result(farm):
    refused = f"127.0.0.1:{closed_port()}"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepted by the kernel; never a HELLO
        mute = f"127.0.0.1:{silent.getsockname()[1]}"
        slow_cwd = farm.configs[2].cwd
        command = f'[ "$PWD" = {slow_cwd} ] && exec sleep 60; pwd'
        hosts = [*farm.hosts[:4], refused, mute]
        results = Group(hosts, connect_timeout=1).run(command, timeout=1)
    assert isinstance(results[refused], ConnectionRefusedError)
    assert isinstance(results[mute], ProtocolMismatch)
    slow = results[farm.hosts[2]]
    assert isinstance(slow, rcmd.CompletedCommand)
    assert slow.timed_out
    for index in (0, 1, 3):
        fine = results[farm.hosts[index]]
        assert isinstance(fine, rcmd.CompletedCommand)
        assert fine.stdout_text == f"{farm.configs[index].cwd}\n"


def test_a_host_that_never_answers_does_not_hold_up_the_others(farm):
    """With no deadline at all, the silent host stays pending while every other one finishes;
    it ends only when its listener goes away."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    mute = f"127.0.0.1:{silent.getsockname()[1]}"

    async def main() -> tuple[list[str], HostDone]:
        finished: list[str] = []
        group = Group([mute, *farm.hosts], connect_timeout=None)
        async for item in group.stream("pwd", output=False):
            assert isinstance(item, HostDone)
            if item.host == mute:
                return finished, item
            finished.append(item.host)
            if len(finished) == len(farm.hosts):
                silent.close()  # only now: its connection is reset
        raise AssertionError("the silent host never finished")

    finished, last = asyncio.run(main())
    assert sorted(finished) == sorted(farm.hosts)
    assert isinstance(last.result, rcmd.ConnectionClosed)  # accepted by the kernel, then reset


def test_a_host_that_hangs_after_its_hello_times_out_by_its_deadline():
    """A server that says HELLO, then nothing: the host's deadline (connect timeout +
    command timeout + kill grace) ends it with TimeoutError."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []

    def serve() -> None:
        peer, _ = listener.accept()
        accepted.append(peer)
        peer.sendall(Connection(Role.SERVER).send(Hello(encoding="utf-8")))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        host = f"127.0.0.1:{listener.getsockname()[1]}"
        group = Group(host, connect_timeout=2, kill_grace=0.5)
        assert group.deadline(0.5) == 3.0
        result = group.run("true", timeout=0.5)[host]
    finally:
        thread.join()
        listener.close()
        for peer in accepted:
            peer.close()
    assert isinstance(result, TimeoutError)
    assert "no result within 3s" in str(result)


def test_stream_yields_output_before_the_host_is_done(farm):
    async def main() -> list[HostOutput | HostDone]:
        return [item async for item in Group(farm.hosts[0]).stream("echo one")]

    items = asyncio.run(main())
    assert isinstance(items[0], HostOutput)
    assert isinstance(items[0].event, Stdout)
    assert items[0].event.data == b"one\n"
    assert isinstance(items[-1], HostDone)


def test_bad_host_sets_and_fanout_are_refused():
    with pytest.raises(ValueError, match="unbalanced"):
        Group("web[1-2")
    with pytest.raises(ValueError, match="bad port"):
        Group("web1:http")
    with pytest.raises(ValueError, match="fanout"):
        Group("web1", fanout=0)


def test_two_hundred_servers_all_run_at_once(tmp_path):
    """200 servers, one client: every command starts before any may finish (each waits on a
    FIFO the test opens only once all 200 have started), and every answer is exact."""
    count = 200
    started, fifo = tmp_path / "started", tmp_path / "go"
    started.mkdir()
    os.mkfifo(fifo)
    dirs = [tmp_path / f"h{i:03d}" for i in range(count)]
    for folder in dirs:
        folder.mkdir()
    command = f"touch {started}/$(basename $PWD); dd if={fifo} bs=1 count=1 2>/dev/null >/dev/null; pwd"
    with ServerFarm(count, encoding="utf-8", per_server=lambda i: {"cwd": str(dirs[i])}) as farm:
        results: dict[str, rcmd.CompletedCommand | Exception] = {}
        runner = threading.Thread(
            target=lambda: results.update(Group(farm.hosts, fanout=count).run(command, timeout=90))
        )
        runner.start()
        try:
            wait_until(lambda: len(os.listdir(started)) == count, "all 200 commands to start", timeout=90)
        finally:
            # One byte for each reader, held open until all have read. O_RDWR: never blocks.
            go = os.open(fifo, os.O_RDWR)
            try:
                os.write(go, b"x" * count)
                runner.join(timeout=100)
            finally:
                os.close(go)
    assert not runner.is_alive()
    for host, folder in zip(farm.hosts, dirs, strict=True):
        result = results[host]
        assert isinstance(result, rcmd.CompletedCommand), f"{host}: {result!r}"
        assert result.stdout == f"{folder}\n".encode()


def test_group_is_exported():
    assert rcmd.Group is Group
    assert Path(rcmd.aio.__file__).name == "aio.py"


def test_the_fanout_benchmark_runs_small(capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import fanout as benchmark

    before = children_of(os.getpid())
    assert benchmark.main(["--hosts", "3", "--fanout", "2"]) == 0
    rows = capsys.readouterr().out.splitlines()[2:]
    assert [row.split()[-1] for row in rows] == ["0", "0"]  # nothing failed, true and sleep 1
    assert [int(row.split()[-8]) for row in rows] == [3, 3]  # the hosts column
    assert children_of(os.getpid()) - before == set()
