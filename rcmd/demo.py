"""Sticky packets (粘包), seen: the same commands through a naive and a prefixed rcmd server.

``rcmd demo`` (or ``make demo``, or ``python demos/compare_modes.py``) starts both servers on
free loopback ports, runs the same script of commands through each with the matching client,
and compares what each client received with what the command really printed (run here, locally).

The naive client is the tutorial's: one ``recv(1024)`` is one reply, decoded on its own. The
prefixed client reads a 4-byte length, then exactly that many bytes, and decodes incrementally.

Nothing is left to timing, so the result is the same on every run and on a loaded machine:
the naive reader waits until everything is in its buffer before its one recv() (SO_RCVLOWAT),
a FIFO keeps the naive server busy while two commands queue up behind it, and a command that
waits on its stdin puts a prefixed chunk boundary inside a character.

Uses only rcmd's public API.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import tempfile
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from rich.text import Text

import rcmd

RECV_SIZE = 1024
FILLER = "head -c 1023 /dev/zero | tr '\\0' x"  # 1023 bytes: the next character straddles byte 1024
COLOURS = ["cyan", "magenta", "yellow", "green", "blue", "bright_white"]
_row_numbers = itertools.count()


@dataclass
class Row:
    """One command of the script: what it really prints, and what each client made of it."""

    case: int
    label: str
    expected_stdout: bytes
    expected_stderr: bytes = b""
    encoding: str = "utf-8"
    naive_reply: bytes | None = None  # None: no reply came at all
    prefixed_stdout: bytes = b""
    prefixed_stderr: bytes = b""
    prefixed_chunks: list[bytes] = field(default_factory=list)
    index: int = field(default_factory=lambda: next(_row_numbers))  # colours the row's bytes

    @property
    def expected_text(self) -> str:
        return self.expected_stdout.decode(self.encoding, "replace")

    @property
    def naive_text(self) -> str | None:
        # The tutorial's reader: each recv() decoded on its own.
        return None if self.naive_reply is None else self.naive_reply.decode(self.encoding, "replace")

    @property
    def prefixed_text(self) -> str:
        decoder = rcmd.StreamDecoder(self.encoding)
        return "".join(decoder.decode(chunk) for chunk in self.prefixed_chunks) + decoder.flush()

    @property
    def naive_ok(self) -> bool:
        # One blob cannot say which bytes were stderr, so any stderr makes it wrong too.
        return (
            not self.expected_stderr
            and self.naive_reply == self.expected_stdout
            and (self.naive_text == self.expected_text)
        )

    @property
    def prefixed_ok(self) -> bool:
        return (self.prefixed_stdout, self.prefixed_stderr) == (
            self.expected_stdout,
            self.expected_stderr,
        ) and (self.prefixed_text == self.expected_text)


@dataclass
class Stream:
    """Bytes that crossed one connection in one direction, and where the reader cut them.

    *writes* are (owner, bytes, label) in the order they were sent: owner is the row's index,
    or -1 for bytes no row owns (length prefixes, type bytes, EXIT, the gate command), which
    are drawn as their *label* instead. *reads* are the sizes of the
    reader's reads: recv() calls for the naive reader, whole frames for the prefixed one.
    """

    title: str
    writes: list[tuple[int, bytes, str | None]] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)


@dataclass
class Scene:
    case: int
    title: str
    lesson: str
    rows: list[Row]
    streams: list[Stream] = field(default_factory=list)


def run_locally(command: str) -> tuple[bytes, bytes]:
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True)
    return done.stdout, done.stderr


# ------------------------------------------------------------------------ the naive side


def naive_round_trips(
    address: tuple[str, int], commands: list[str], rows: list[Row], encoding: str
) -> Stream:
    """Send each command, wait until all that is owed is buffered, then recv() once.

    Owed = what earlier recv()s left unread + what this command prints: as if the network
    delivered everything before the reader got round to reading, which it may always do.
    """
    stream = Stream("naive" if encoding == "utf-8" else f"naive {encoding}")
    unread = 0
    with rcmd.NaiveClient.connect(*address, encoding=encoding) as client:
        for command, row in zip(commands, rows, strict=False):
            client.send_command(command)
            sent = row.expected_stderr + row.expected_stdout  # the server sends stderr, then stdout
            stream.writes += [(row.index, row.expected_stderr, None), (row.index, row.expected_stdout, None)]
            unread += len(sent)
            client.wait_buffered(unread)
            row.naive_reply = client.recv_reply()
            unread -= len(row.naive_reply)
            stream.reads.append(len(row.naive_reply))
    return stream


def naive_glued_commands(address: tuple[str, int], rows: list[Row]) -> Stream:
    """Send two commands while the server is busy; it reads them with one recv(1024)."""
    stream = Stream("naive")
    with tempfile.TemporaryDirectory() as scratch, rcmd.NaiveClient.connect(*address) as client:
        gate = os.path.join(scratch, "gate")
        os.mkfifo(gate)
        busy = f"cat {gate} > /dev/null"
        client.send_command(busy)
        writer = os.open(gate, os.O_WRONLY)  # returns once the server runs `busy`
        for row in rows:
            client.send_command(row.label)  # both queue up in the server's buffer
        os.close(writer)  # `busy` ends (printing nothing); the server reads again
        glued = "".join(row.label for row in rows)
        reply, _ = run_locally(glued)  # what the server runs: the two glued together
        client.wait_buffered(len(reply))
        rows[0].naive_reply = client.recv_reply()
        rows[1].naive_reply = None if client.wait_buffered(1, timeout=0.5) == 0 else client.recv_reply()
        stream.writes = [(-1, busy.encode(), "cat …/gate > /dev/null")]
        stream.writes += [(row.index, row.label.encode(), None) for row in rows]
        stream.reads = [len(busy), len(glued)]  # the reply "aecho b" is what proves the second read
    return stream


# --------------------------------------------------------------------- the prefixed side


def prefixed_runs(
    client: rcmd.Client,
    commands: list[str],
    rows: list[Row],
    stream: Stream,
    split_after: bytes | None = None,
) -> None:
    """Run each command and record its frames. With *split_after*, the command waits on
    stdin once its output ends with those bytes: we answer only after that chunk arrived,
    so a chunk boundary falls there (inside a character)."""
    for command, row in zip(commands, rows, strict=False):
        with client.stream(command, stdin=split_after is not None) as events:
            for event in events:
                if isinstance(event, (rcmd.Stdout, rcmd.Stderr)):
                    if isinstance(event, rcmd.Stdout):
                        row.prefixed_stdout += event.data
                        row.prefixed_chunks.append(event.data)
                    else:
                        row.prefixed_stderr += event.data
                    tag = "‹out›" if isinstance(event, rcmd.Stdout) else "‹err›"
                    stream.writes += [(-1, b"\x00" * 5, tag), (row.index, event.data, None)]
                    stream.reads.append(5 + len(event.data))
                    if split_after and row.prefixed_stdout.endswith(split_after):
                        events.write_stdin(b"go\n")
                        events.close_stdin()
                else:
                    frame = len(rcmd.encode_message(event)) + 4
                    stream.writes.append((-1, b"\x00" * frame, f"‹exit {event.returncode}›"))
                    stream.reads.append(frame)


# ------------------------------------------------------------------------------ scenes


def build_scenes(naive_address: tuple[str, int], prefixed_address: tuple[str, int]) -> list[Scene]:
    scenes = []

    # 1. A reply longer than the reader's buffer.
    commands = ["seq 1 400", "echo hello"]
    rows = [Row(1, c, *run_locally(c)) for c in commands]
    scene = Scene(
        1,
        "a reply longer than recv(1024), server → client",
        "the tail of `seq` is read as the answer to `echo hello`",
        rows,
    )
    scene.streams.append(naive_round_trips(naive_address, commands, rows, "utf-8"))
    scenes.append(scene)

    # 2. Two small sends in quick succession: stderr, then stdout, as the tutorial sends them.
    command = "echo err >&2; echo out"
    rows = [Row(2, command, *run_locally(command))]
    scene = Scene(
        2,
        "two small sends, one recv(), server → client",
        "stderr and stdout arrive as one blob: which part was the error?",
        rows,
    )
    scene.streams.append(naive_round_trips(naive_address, [command], rows, "utf-8"))
    scenes.append(scene)

    # 3. Two commands sent back to back.
    rows = [Row(3, c, *run_locally(c)) for c in ("echo a", "echo b")]
    scene = Scene(
        3,
        "two commands sent back to back, client → server",
        "the naive server runs `echo aecho b`, one command line",
        rows,
    )
    scene.streams.append(naive_glued_commands(naive_address, rows))
    scenes.append(scene)

    # 4. Multibyte characters cut by a boundary, in UTF-8 and in GBK (Windows cmd.exe).
    rows = [
        Row(4, "1023 × x + 中文 (UTF-8)", *run_locally(f"{FILLER}; printf '中文\\n'")),
        Row(
            4,
            "1023 × x + 中文 (GBK)",
            *run_locally(f"{FILLER}; printf '\\326\\320\\316\\304\\n'"),
            encoding="gbk",
        ),
    ]
    scene = Scene(
        4,
        "a character cut in two, server → client",
        "recv() byte 1024 falls inside 中: decoded alone it is \ufffd",
        rows,
    )
    for row, middle, rest in (
        (rows[0], "\\344", "\\270\\255\\346\\226\\207"),
        (rows[1], "\\326", "\\320\\316\\304"),
    ):
        naive = naive_round_trips(
            naive_address, [f"{FILLER}; printf '{middle}{rest}\\n'"], [row], row.encoding
        )
        scene.streams.append(naive)
    scenes.append(scene)

    # The same script through the prefixed server, on one connection per encoding.
    streams = {case: Stream("prefixed") for case in (1, 2, 3, 4)}
    with rcmd.connect(*prefixed_address, encoding="utf-8") as client:
        for scene in scenes[:3]:
            prefixed_runs(client, [row.label for row in scene.rows], scene.rows, streams[scene.case])
        utf8 = scenes[3].rows[0]
        prefixed_runs(
            client,
            [f"{FILLER}; printf '\\344'; read go; printf '\\270\\255\\346\\226\\207\\n'"],
            [utf8],
            streams[4],
            split_after=b"\xe4",
        )
    gbk_stream = Stream("prefixed gbk")
    with rcmd.connect(*prefixed_address, encoding="gbk") as client:
        gbk = scenes[3].rows[1]
        prefixed_runs(
            client,
            [f"{FILLER}; printf '\\326'; read go; printf '\\320\\316\\304\\n'"],
            [gbk],
            gbk_stream,
            split_after=b"\xd6",
        )
    # Scene 3's prefixed stream is the client's: each RUN is its own frame.
    streams[3].writes = []
    streams[3].reads = []
    for row in scenes[2].rows:
        size = len(rcmd.encode_message(rcmd.messages.Run(row.label)))
        json_rest = size - 1 - len(row.label)
        streams[3].writes += [
            (-1, b"\x00" * 5, "‹run›"),
            (row.index, row.label.encode(), None),
            (-1, b"\x00" * json_rest, "…"),
        ]
        streams[3].reads.append(4 + size)
    for scene in scenes:
        scene.streams.append(streams[scene.case])
    scenes[3].streams.append(gbk_stream)
    return scenes


# ----------------------------------------------------------------------------- drawing


def shorten(text: str | None, width: int = 30) -> str:
    if text is None:
        return "(no reply)"
    text = text.replace("\n", "⏎")
    return text if len(text) <= width else f"{text[:12]}…{text[-(width - 13) :]}"


def received_cell(stdout: str | None, stderr: str = "") -> str:
    cell = shorten(stdout)
    return f"{cell}  err: {shorten(stderr, 12)}" if stderr else cell


def verdict(ok: bool) -> Text:
    return Text("OK", style="bold green") if ok else Text("WRONG", style="bold red")


def draw_stream(stream: Stream, keep: int = 6) -> Text:
    """One line of bytes: each command's bytes in its own colour, rcmd's own bytes as dim
    labels, a bar where a read ended. Long runs are elided except near their edges and cuts."""
    bar = ("┃", "bold red") if stream.title.startswith("naive") else ("┃", "bold green")
    cuts = set(itertools.accumulate(stream.reads))
    line = Text(f"{stream.title:13}", style="bold")
    offset = 0
    for owner, data, label in stream.writes:
        if label is not None:
            line.append(label, style="dim")
        else:
            edges = {0, len(data)} | {cut - offset for cut in cuts if offset < cut < offset + len(data)}
            shown = {i for edge in edges for i in range(edge - keep, edge + keep)}
            for i, byte in enumerate(data):
                if i and offset + i in cuts:
                    line.append(*bar)
                if i not in shown:
                    if i - 1 in shown:
                        line.append("…", style="dim")
                    continue
                glyph = "⏎" if byte == 10 else chr(byte) if 32 <= byte < 127 else f" {byte:02x}"
                line.append(
                    glyph, style=COLOURS[owner % len(COLOURS)] + (" underline" if byte >= 128 else "")
                )
        offset += len(data)
        if data and offset in cuts:
            line.append(*bar)
    return line


def render(console: Console, scenes: list[Scene]) -> dict[str, int]:
    table = Table(title="The same commands, two framings", show_lines=False, expand=False)
    for name in ("#", "command", "what it prints", "naive received", "", "prefixed received", ""):
        table.add_column(name, overflow="fold")
    correct = {"naive": 0, "prefixed": 0}
    rows = [row for scene in scenes for row in scene.rows]
    for row in rows:
        correct["naive"] += row.naive_ok
        correct["prefixed"] += row.prefixed_ok
        table.add_row(
            str(row.case),
            row.label,
            received_cell(row.expected_text, row.expected_stderr.decode(row.encoding, "replace")),
            received_cell(row.naive_text),
            verdict(row.naive_ok),
            received_cell(row.prefixed_text, row.prefixed_stderr.decode(row.encoding, "replace")),
            verdict(row.prefixed_ok),
        )
    console.print(table)
    for mode in ("naive", "prefixed"):
        console.print(f"{mode}: {correct[mode]}/{len(rows)} correct", highlight=False, markup=False)
    console.print()
    console.print(Text("The byte stream, as the reader cut it", style="bold underline"))
    console.print(
        Text.assemble(
            ("Each command's bytes in its own colour; ", ""),
            ("‹out› ‹err› ‹run› ‹exit›", "dim"),
            (" rcmd's frame headers (length prefix, type); ", ""),
            ("┃", "bold red"),
            (" where one naive recv(1024) ended; ", ""),
            ("┃", "bold green"),
            (" where the prefixed reader ended a frame; … bytes left out; hex: bytes of 中文.", ""),
        )
    )
    for scene in scenes:
        console.print()
        console.print(Text.assemble((f"{scene.case}. {scene.title}: ", "bold"), (scene.lesson, "italic")))
        for stream in scene.streams:
            console.print(draw_stream(stream))
    utf8 = scenes[3].rows[0]
    per_chunk = "".join(chunk.decode("utf-8", "replace") for chunk in utf8.prefixed_chunks)
    console.print()
    console.print(
        f"Decoding each prefixed chunk on its own would give …{shorten(per_chunk[-6:], 12)}; "
        f"rcmd's incremental decoder gives …{shorten(utf8.prefixed_text[-6:], 12)}."
    )
    return correct


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rcmd demo", description="Sticky packets and their fix, side by side."
    )
    parser.add_argument("--svg", metavar="FILE", help="also save the table and picture as an SVG image")
    args = parser.parse_args(argv)
    console = Console(record=bool(args.svg), width=120 if args.svg else None)
    with (
        rcmd.BackgroundServer(framing="naive", encoding="utf-8") as naive,
        rcmd.BackgroundServer(encoding="utf-8") as prefixed,
    ):
        scenes = build_scenes(naive.address, prefixed.address)
    correct = render(console, scenes)
    if args.svg:
        console.save_svg(args.svg, title="rcmd demo: sticky packets and the length prefix")
    rows = sum(len(scene.rows) for scene in scenes)
    return 0 if correct["prefixed"] == rows and correct["naive"] < rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
