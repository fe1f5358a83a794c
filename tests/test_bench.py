"""The benchmark script still runs: every section on tiny sizes, its tables well formed.

Speed is never asserted here (these machines are noisy, and goals live in `make bench`);
what is checked is that each section completes, measures what it says, and leaves no
process behind.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from conftest import children_of

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import bench


@pytest.fixture(autouse=True)
def leaves_no_process():
    before = children_of(os.getpid())
    yield
    assert children_of(os.getpid()) - before == set()


def test_bulk_rows_cover_every_path_and_count_every_byte():
    rows = bench.bench_bulk(2, 1, 1)  # 2 MiB; a path that lost bytes would raise
    names = [row[0] for row in rows]
    assert names[:6] == [
        "framed relay limit (reference)",
        "rcmd API: stream()",
        "rcmd API: stdin into `cat > /dev/null`",
        "  upload / download (API)",
        "rcmd CLI: rcmd -c > /dev/null",
        "  the same less its start-up",
    ]
    assert names[6:9] == ["asyncssh", "paramiko", "tutorial design (data += recv)"]  # peers: rows either way
    assert names[9].startswith("ssh")
    up, down = rows[2][2], rows[1][2]
    assert rows[3][3] == f"{down / up:.2f}x (goal: >= 0.9x)"
    for name, _mib, seconds, ratio in rows:
        if name == "  upload / download (API)":
            continue
        if seconds is None:  # ssh where no sshd can be started; start-up longer than 2 MiB takes
            assert ratio.startswith("skipped: ") or ratio == "start-up is all of it at this size", name
        else:
            assert seconds > 0, name
            assert ratio > 0, name


def test_memory_is_read_from_the_server_process():
    (streaming, before, peak), (idle, before_idle, after_idle) = bench.bench_memory(8, 20)
    assert "8 MiB" in streaming
    assert "20 idle" in idle
    assert 0 < before <= peak
    assert 0 < before_idle <= after_idle


def test_latency_rows_are_percentiles_against_the_floor():
    rows = bench.bench_latency(10)
    assert rows[0][0].startswith("local spawn")
    assert rows[0][3] == 1.0
    for name, p50, p99, ratio in rows:
        if p50 is None:
            assert ratio.startswith("skipped: "), name
            continue
        assert p50 > 0, name
        assert ratio > 0, name
        assert p99 is None or p99 >= p50, name


def test_concurrency_rows_are_well_formed():
    rows = bench.bench_concurrency(4, 3)
    assert [row[0] for row in rows] == ["local spawns (ceiling)", "load generator", "rcmd.connect() threads"]
    assert rows[0][2] == rows[0][3]  # the ceiling is its own reference
    assert rows[0][4] == 1.0
    for name, clients, rate, ceiling, _ratio, p99, cpu_ms in rows:
        assert clients == 4, name
        assert min(rate, ceiling, p99) > 0, name
        assert cpu_ms >= 0, name


def test_transfer_rows_move_every_byte():
    rows = bench.bench_transfers(2, 1)  # 2 MiB; a path that lost bytes would raise
    names = [row[0] for row in rows]
    assert names[:5] == [
        "stdin to `cat > FILE` (reference)",
        "rcmd API: put()",
        "`cat FILE` to a file (reference)",
        "rcmd API: get()",
        "rcmd API: get(fsync=True)",
    ]
    for _name, mib, seconds, ratio in rows[:5]:
        assert mib == 2
        assert seconds > 0
        assert ratio > 0


def test_line_latency_rows_time_every_line_against_the_relay():
    rows = bench.bench_lines(3, 1)
    names = [row[0] for row in rows]
    assert names[:3] == ["bare relay (reference)", "rcmd API: stream()", "  rcmd-server, sans-I/O client"]
    assert {"asyncssh", "paramiko"} <= set(names)  # measured, or saying why not
    assert names[-1].startswith("ssh")
    for name, p50, p99, ratio in rows:
        if p50 is None:
            assert ratio.startswith("skipped: "), name
            continue
        assert 0 < p50 <= p99, name
        assert ratio > 0, name
    assert rows[0][3] == 1.0


def test_line_clock_takes_lines_split_anywhere():
    clock = bench.LineClock()
    stamp = str(time.monotonic_ns()).encode()
    for part in (stamp[:3], stamp[3:] + b"\n" + stamp[:5], stamp[5:] + b"\n"):
        clock.feed(part)
    assert len(clock.delays) == 2
    assert all(0 <= delay < 60 for delay in clock.delays)


def test_peer_rows_say_why_when_a_peer_is_not_installed():
    assert bench.missing("os") is None
    assert bench.missing("no_such_module_here").startswith("skipped: not installed")


def test_sections_can_be_chosen_and_the_server_loop_named(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--only", "memory", "--quick"])
    monkeypatch.setattr(bench, "bench_memory", lambda stream_mib, idle: [("case", 1024, 2048)])
    bench.main()
    out = capsys.readouterr().out
    assert "server on asyncio" in out
    assert "Server memory" in out
    assert "Latency" not in out
    assert "Bulk output" not in out
    assert bench.SERVER_LOOP == "asyncio"


def test_the_server_runs_on_uvloop_when_asked(monkeypatch):
    pytest.importorskip("uvloop")
    monkeypatch.setattr(bench, "SERVER_LOOP", "uvloop")
    with bench.rcmd_server() as server:
        assert b"uvloop.install()" in Path(f"/proc/{server.proc.pid}/cmdline").read_bytes()
        with bench.rcmd.connect("127.0.0.1", server.port) as client:
            assert client.run("echo hi").stdout == b"hi\n"
