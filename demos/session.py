"""The same commands through a naive and a prefixed rcmd server, side by side.

Starts both servers on free loopback ports (public API only), runs a short script of
commands through each with the matching client, and compares what each client received
with what the command really printed (run locally). The naive client is the tutorial's:
one recv(1024) per reply. Expect it to be wrong, and the prefixed one to be exact.

    python demos/session.py
"""

from __future__ import annotations

import subprocess

from rich.console import Console
from rich.table import Table

import rcmd

SCRIPT = [
    "seq 1 3000",  # longer than one recv(1024): its tail leaks into the next reply
    "echo hello",
    "echo err >&2; echo out",  # two sends (stderr, then stdout) that one recv reads as one
    "printf '中文\\n'",
]


def expected(command: str) -> bytes:
    """What the command really prints, stderr then stdout, as the naive server sends it."""
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True)
    return done.stderr + done.stdout


def short(data: bytes, width: int = 34) -> str:
    text = data.decode("utf-8", "replace").replace("\n", "⏎")
    return text if len(text) <= width else f"{text[:14]}…{text[-(width - 15):]}"


def naive_replies(address) -> list[bytes]:
    with rcmd.NaiveClient.connect(*address) as client:
        replies = []
        for command in SCRIPT:
            client.send_command(command)
            # Wait until the whole reply is buffered, as on a busy network; then read once.
            client.wait_buffered(len(expected(command)), timeout=2)
            replies.append(client.recv_reply())
        return replies


def prefixed_replies(address) -> list[bytes]:
    with rcmd.connect(*address) as client:
        return [r.stderr + r.stdout for r in (client.run(c) for c in SCRIPT)]


def main() -> int:
    console = Console()
    with rcmd.BackgroundServer(framing="naive", encoding="utf-8") as naive, rcmd.BackgroundServer(
        encoding="utf-8"
    ) as prefixed:
        results = {"naive": naive_replies(naive.address), "prefixed": prefixed_replies(prefixed.address)}
    table = Table(title="same commands, two framings", show_lines=True)
    for column in ("command", "expected", "naive received", "", "prefixed received", ""):
        table.add_column(column)
    correct = {"naive": 0, "prefixed": 0}
    for i, command in enumerate(SCRIPT):
        want = expected(command)
        row = [command, short(want)]
        for mode in ("naive", "prefixed"):
            ok = results[mode][i] == want
            correct[mode] += ok
            row += [short(results[mode][i]), "[green]OK[/]" if ok else "[red]WRONG[/]"]
        table.add_row(*row)
    console.print(table)
    for mode in ("naive", "prefixed"):
        console.print(f"{mode}: {correct[mode]}/{len(SCRIPT)} correct")
    console.print(
        "\nTCP is a byte stream: the naive reader takes one recv() as one reply, so replies are cut "
        "and glued. The prefixed framing sends a 4-byte length before every message."
    )
    return 0 if correct["prefixed"] == len(SCRIPT) and correct["naive"] < len(SCRIPT) else 1


if __name__ == "__main__":
    raise SystemExit(main())
