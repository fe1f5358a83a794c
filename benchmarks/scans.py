"""How long the server's searches of /proc hold its event loop, while commands are killed.

    python benchmarks/scans.py [N]        # N commands killed by their timeout (default 200)
    PYTHONPATH=DIR python benchmarks/scans.py   # the server from another checkout's code

An in-process BackgroundServer (no subreaper: every command's end is followed by a sweep).
One client runs ``sleep 600`` with a 50 ms timeout N times (each kill scans /proc for the
command's cookie); meanwhile a ticker task on the server's loop wakes every millisecond and
records its gaps, and a second client runs ``true`` in a loop. Reported: the number of
/proc entries, each scan's cost and the thread it ran on, the ticker's worst gaps, and the
second client's latency.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import threading
import time
from typing import Any

import rcmd.process
from rcmd import connect
from rcmd.client import TimeoutExpired
from rcmd.server import BackgroundServer


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    scans: dict[str, list[float]] = {}  # thread name -> seconds per scan
    real = rcmd.process.kill_marked

    def timed(*args: Any, **kwargs: Any) -> int:
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            scans.setdefault(threading.current_thread().name, []).append(time.perf_counter() - start)

    rcmd.process.kill_marked = timed  # type: ignore[assignment]
    gaps: list[float] = []
    latencies: list[float] = []
    done = threading.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    with BackgroundServer() as server:
        ticking = asyncio.run_coroutine_threadsafe(ticker(), server._loop)

        def honest() -> None:
            with connect(*server.address) as client:
                while not done.is_set():
                    start = time.perf_counter()
                    client.run("true")
                    latencies.append(time.perf_counter() - start)

        other = threading.Thread(target=honest)
        other.start()
        started = time.perf_counter()
        with connect(*server.address) as client:
            for _ in range(count):
                try:
                    client.run("sleep 600", timeout=0.05)
                except TimeoutExpired:
                    pass
        elapsed = time.perf_counter() - started
        done.set()
        other.join()
        ticking.result(10)
    entries = sum(1 for name in os.listdir("/proc") if name.isdigit())

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:.2f} ms"

    def spread(values: list[float]) -> str:
        values = sorted(values)
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        return f"p50 {ms(statistics.median(values))}  p99 {ms(p99)}  max {ms(values[-1])}"

    load = os.getloadavg()[0]
    print(
        f"{count} commands killed by their timeout in {elapsed:.2f} s; {entries} /proc entries; load {load:.1f}"
    )
    for name, values in sorted(scans.items()):
        print(f"  scans on {name:<14} {len(values):5d}, {sum(values) * 1e3:6.0f} ms in all, {spread(values)}")
    print(f"  loop ticker gaps         {spread(gaps)}")
    print(f"  another client's `true`  {spread(latencies)}  (n={len(latencies)})")


if __name__ == "__main__":
    main()
