"""How long the server's event loop spends on one RUN before it spawns: cd detection, then
everything (decode, checks, cd detection). Before: parse_cd with shlex.split; after: the
linear grammar of docs/PROTOCOL.md section 5. Then RUN bodies made of JSON structure, whose
json.loads alone takes longer than any command line.

    python benchmarks/parse_cd.py           # the shlex column stops at 256 KiB (seconds each)
    python benchmarks/parse_cd.py --full    # and runs at 1 MiB too (tens of seconds)

Each figure is the best of several runs (one run for shlex above 64 KiB). Nothing else here
touches the network or starts a process.
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from collections.abc import Callable
from typing import Any

from rcmd.errors import RemoteProtocolError
from rcmd.messages import decode_message
from rcmd.server.cd import parse_cd

KiB = 1024
SIZES = [1 * KiB, 16 * KiB, 64 * KiB, 256 * KiB, 1024 * KiB]
SHAPES: dict[str, Callable[[int], str]] = {
    "echo aaa...": lambda n: "echo " + "a" * (n - 5),
    "cd aaa...": lambda n: "cd " + "a" * (n - 3),
    "cd 'a a ...'": lambda n: "cd '" + "a " * ((n - 5) // 2) + "'",
    "echo a b c ...": lambda n: "echo" + " a" * ((n - 4) // 2),
    "cd 中中中...": lambda n: "cd " + "中" * ((n - 3) // 3),  # 1 MiB of UTF-8 on the wire
}


def parse_cd_shlex(command: str) -> str | None:
    """parse_cd as it was before (rcmd e3443ea): a full shell parse of every command."""
    if any(ch in command for ch in "`$(){};&|<>*?[\n"):
        return None
    try:
        tokens = shlex.split(command)
    except ValueError:
        return None
    if not tokens or tokens[0] != "cd" or len(tokens) > 2:
        return None
    return tokens[1] if len(tokens) == 2 else ""


def handle_run(payload: bytes) -> None:
    """The server's work on the loop for a RUN, up to the spawn (session._handle)."""
    run = decode_message(payload)
    run.refusal()  # type: ignore[union-attr]
    parse_cd(run.command)  # type: ignore[union-attr]


def best_of(function: Callable[[Any], object], argument: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        function(argument)
        times.append(time.perf_counter() - start)
    return min(times)


def ms(seconds: float | None) -> str:
    return "skipped" if seconds is None else f"{seconds * 1000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true", help="run shlex at 1 MiB too")
    args = parser.parse_args()
    print(f"{'command':<16} {'size':>8} {'shlex (before)':>16} {'grammar (after)':>16} {'whole RUN':>12}")
    for shape, make in SHAPES.items():
        for size in SIZES:
            command = make(size)
            payload = b"\x02" + json.dumps({"command": command}, ensure_ascii=False).encode()
            old: float | None = None
            if size <= 256 * KiB or args.full:
                old = best_of(parse_cd_shlex, command, 3 if size <= 64 * KiB else 1)
            new = best_of(parse_cd, command, 5)
            whole = best_of(handle_run, payload, 5)
            print(f"{shape:<16} {size // KiB:>5} KiB {ms(old):>16} {ms(new):>16} {ms(whole):>12}", flush=True)
    hostile_table()


#: Bodies that are all JSON structure, for the decode figures: the cost of json.loads grows
#: with the number of values, not only with the bytes.
HOSTILE_BODIES: dict[str, bytes] = {
    "300,000 empty lists": b'{"command":"x","later":[' + b",".join([b"[]"] * 349_000) + b"]}",
    "500,000 integers": b'{"command":"x","later":[' + b",".join([b"1"] * 524_000) + b"]}",
    "1 MiB of [ in a command": json.dumps({"command": "echo " + "[" * ((1 << 20) - 20)}).encode(),
}


def hostile_table() -> None:
    print(f"\n{'RUN body (1 MiB)':<26} {'json.loads':>12} {'whole RUN':>12}")
    for name, body in HOSTILE_BODIES.items():
        payload = b"\x02" + body
        parse = best_of(json.loads, body, 3)
        try:
            whole = best_of(handle_run, payload, 3)
        except RemoteProtocolError as exc:
            print(f"{name:<26} {ms(parse):>12} rejected: {exc}")
            continue
        print(f"{name:<26} {ms(parse):>12} {ms(whole):>12}", flush=True)


if __name__ == "__main__":
    main()
