"""Bulk output throughput: rcmd beside a local baseline, in one run. Prints a table.

    python benchmarks/throughput.py [--mib 200] [--rounds 3]

Baseline: the same command run locally, its stdout read by Python from a pipe in 64 KiB
reads (child -> pipe -> Python), the part of the path rcmd cannot avoid. rcmd adds the
server's pipe reading, framing, the loopback socket and the client's parsing. Medians of
--rounds runs; ratios are what to compare, since machines (and neighbours) vary.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import rcmd


def local_pipe(command: str) -> int:
    proc = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE)
    total = 0
    while chunk := proc.stdout.read1(65536):
        total += len(chunk)
    proc.wait()
    return total


def api_stream(address, command: str) -> int:
    total = 0
    with rcmd.connect(*address) as client:
        for event in client.stream(command):
            if isinstance(event, rcmd.Stdout):
                total += len(event.data)
    return total


def cli_one_shot(address, command: str) -> int:
    argv = [sys.executable, "-m", "rcmd", f"{address[0]}:{address[1]}", "-c", command]
    with open(os.devnull, "wb") as sink:
        subprocess.run(argv, stdout=sink, check=True)
    return -1  # not counted here; the command's size is known


def measure(fn, *args, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    command = f"head -c {args.mib * 1024 * 1024} /dev/zero"
    size_mb = args.mib * 1024 * 1024 / 1e6
    server = subprocess.Popen(
        [sys.executable, "-c", "from rcmd.cli import server_entry; server_entry()", "--port", "0",
         "--log-level", "warning"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = server.stdout.readline()
        host_port = line.split("listening on ")[1].split()[0]
        host, port = host_port.rsplit(":", 1)
        address = (host, int(port))
        rows = [
            ("local pipe -> Python (baseline)", measure(local_pipe, command, rounds=args.rounds)),
            ("rcmd API: client.stream()", measure(api_stream, address, command, rounds=args.rounds)),
            ("rcmd CLI: rcmd -c > /dev/null", measure(cli_one_shot, address, command, rounds=args.rounds)),
        ]
    finally:
        server.terminate()
        server.wait(10)
    print(f"{args.mib} MiB of output, median of {args.rounds}; {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    baseline = rows[0][1]
    print(f"{'path':34} {'seconds':>8} {'MB/s':>8} {'x baseline':>11}")
    for name, seconds in rows:
        print(f"{name:34} {seconds:8.3f} {size_mb / seconds:8.0f} {baseline / seconds:11.2f}")


if __name__ == "__main__":
    main()
