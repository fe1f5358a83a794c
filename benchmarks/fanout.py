"""Fan-out: one client, many servers on loopback. Hosts per second and the client's memory.

    python benchmarks/fanout.py                 # 200 and 1,000 hosts
    python benchmarks/fanout.py --hosts 50      # any counts, bounded to 2,000

The servers run in one child process (rcmd.server.farm.ServerFarm: N servers on one event
loop, each on its own 127.0.0.1 port), so the client's RSS measured here is the client's
alone. Each row runs a command on every host through rcmd.Group, which opens a connection
per host, handshakes, runs, and closes. ``true`` shows the cost per host; ``sleep 1`` with
every host at once shows that the total is the slowest host's time, not the sum (which
would be one second per host).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import time

from rcmd.group import Group

#: Counts beyond this need more file descriptors and processes than a shared 2-core box has.
MAX_HOSTS = 2000
FARM_PROGRAM = """
import sys
from rcmd.server.farm import ServerFarm
with ServerFarm(int(sys.argv[1]), encoding="utf-8", max_connections=4) as farm:
    print(" ".join(str(port) for _, port in farm.addresses), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
"""


def rss_kib() -> int:
    """This process's resident set now, in KiB (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_farm(count: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", FARM_PROGRAM, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ports = proc.stdout.readline().split()
    if len(ports) != count:
        proc.kill()
        raise SystemExit(f"the farm started {len(ports)} servers of {count}")
    return proc, [f"127.0.0.1:{port}" for port in ports]


def stop_farm(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def one_row(hosts: list[str], fanout: int, command: str) -> dict[str, float]:
    gc.collect()
    before = rss_kib()
    group = Group(hosts, fanout=fanout, connect_timeout=30)
    started = time.perf_counter()
    results = asyncio.run(group.run_async(command, timeout=60))
    elapsed = time.perf_counter() - started
    failed = [host for host, result in results.items() if not hasattr(result, "returncode")]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "hosts": len(hosts),
        "fanout": fanout,
        "seconds": elapsed,
        "hosts_per_s": len(hosts) / elapsed,
        "rss_before": before,
        "rss_after": rss_kib(),
        "peak": peak,
        "failed": len(failed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--fanout", type=int, nargs="+", default=[64, 256])
    args = parser.parse_args(argv)
    if any(not 1 <= count <= MAX_HOSTS for count in args.hosts):
        parser.error(f"--hosts must be between 1 and {MAX_HOSTS}")
    print(f"rcmd fan-out on loopback, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(
        f"{'command':>8} {'hosts':>6} {'fanout':>6} {'seconds':>8} {'hosts/s':>8} {'RSS before':>11} {'RSS after':>10} {'peak':>8} failed"
    )
    for count in args.hosts:
        farm, hosts = start_farm(count)
        try:
            runs = [("true", fanout) for fanout in args.fanout] + [("sleep 1", count)]
            for command, fanout in runs:
                row = one_row(hosts, fanout, command)
                print(
                    f"{command:>8} {row['hosts']:>6} {row['fanout']:>6} {row['seconds']:>8.2f} {row['hosts_per_s']:>8.0f}"
                    f" {row['rss_before'] / 1024:>9.1f}Mi {row['rss_after'] / 1024:>8.1f}Mi"
                    f" {row['peak'] / 1024:>6.1f}Mi {row['failed']}",
                    flush=True,
                )
        finally:
            stop_farm(farm)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
