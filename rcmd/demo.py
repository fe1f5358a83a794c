"""Sticky packets (粘包), seen: the same commands through a naive and a prefixed rcmd server.

``rcmd demo`` (or ``make demo``, or ``python demos/compare_modes.py``) starts both servers on
free loopback ports, runs the same script of commands through each with the matching client,
and compares what each client received with what the command really printed (run here, locally).

The naive client is the tutorial's: one ``recv(1024)`` is one reply, decoded on its own. The
prefixed client reads a 4-byte length, then exactly that many bytes, and decodes incrementally.

Nothing is left to timing, so the result is the same on every run and on a loaded machine:
the naive reader waits until everything is in its buffer before its one recv() (SO_RCVLOWAT),
a FIFO keeps the naive server busy while two commands queue up behind it, and a prefixed
command that waits on its stdin after each piece it prints makes each piece one frame (so a
chunk boundary falls inside a character, and stderr's frame comes before stdout's). The
picture says so in its legend, and ``make demo-svg`` redraws docs/demo.svg byte for byte.

Uses only rcmd's public API.
"""

from __future__ import annotations

import argparse
import difflib
import io
import itertools
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version

from rich.console import Console
from rich.table import Table
from rich.text import Text

import rcmd

RECV_SIZE = 1024
FILLER = "head -c 1023 /dev/zero | tr '\\0' x"  # 1023 bytes: the next character straddles byte 1024
COLOURS = ["cyan", "magenta", "yellow", "green", "blue", "bright_white"]
# Where a read ended: a glyph each, not only a colour, so the marks survive NO_COLOR, a
# monochrome terminal and colour-blind eyes.
NAIVE_CUT = ("┃", "bold red")  # one naive recv(1024) returned here
FRAME_START = ("[", "bold green")  # a frame begins: its 4-byte length comes first
FRAME_END = ("]", "bold green")  # the prefixed reader ended a frame here
PREFIX_STYLE = "bold bright_white on grey30"  # the length prefix's 4 bytes, in hex
LANE_WIDTH = 13  # the lane's name and a space, then its bytes
SVG_WIDTH = 120  # columns of the picture in docs/demo.svg


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
    index: int = 0  # the row's place in the script: colours its bytes (set by build_scenes)

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
class Piece:
    """Bytes that crossed the connection, and how the picture draws them: in the colour of
    the row that owns them (*owner*, a row's index), as a *label* standing for them (a type
    byte, a JSON body, the gate command), or in hex (*hex*: a length prefix)."""

    data: bytes
    owner: int | None = None
    label: str | None = None
    hex: bool = False


@dataclass
class Stream:
    """Bytes that crossed one connection in one direction, and where the reader cut them.

    *pieces* are in the order they were sent. *reads* are the sizes of the reader's reads:
    recv() calls for the naive reader, whole frames for the prefixed one (*framed*).
    """

    title: str
    pieces: list[Piece] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)

    @property
    def framed(self) -> bool:
        return self.title.startswith("prefixed")

    def add_frame(self, message: rcmd.messages.Message, owner: int | None = None) -> None:
        """A prefixed frame, exactly as it is on the wire: length, type byte, body."""
        frame = rcmd.encode_frame(rcmd.encode_message(message))
        prefix, type_byte, body = frame[:4], frame[4:5], frame[5:]
        self.pieces.append(Piece(prefix, hex=True))
        if isinstance(message, (rcmd.Stdout, rcmd.Stderr)):
            tag = "‹out›" if isinstance(message, rcmd.Stdout) else "‹err›"
            self.pieces += [Piece(type_byte, label=tag), Piece(body, owner=owner)]
        elif isinstance(message, rcmd.messages.Run):  # JSON: the command is drawn, the rest cut short
            command = message.command.encode()
            before, after = body.split(command, 1)
            self.pieces += [
                Piece(type_byte, label="‹run›"),
                Piece(before, label=before.decode()),
                Piece(command, owner=owner),
                Piece(after, label=after[:2].decode() + "…}"),
            ]
        else:
            assert isinstance(message, rcmd.Exit)
            self.pieces.append(Piece(type_byte + body, label=f"‹exit {message.returncode}›"))
        self.reads.append(len(frame))


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
            stream.pieces += [Piece(row.expected_stderr, row.index), Piece(row.expected_stdout, row.index)]
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
        stream.pieces = [Piece(busy.encode(), label="cat …/gate > /dev/null")]
        stream.pieces += [Piece(row.label.encode(), row.index) for row in rows]
        stream.reads = [len(busy), len(glued)]  # the reply "aecho b" is what proves the second read
    return stream


# --------------------------------------------------------------------- the prefixed side


def prefixed_runs(
    client: rcmd.Client,
    commands: list[str],
    rows: list[Row],
    stream: Stream,
    gates: tuple[int, ...] = (),
) -> None:
    """Run each command and record its frames.

    With *gates* (byte counts), the command waits on its stdin (``read go``) after each piece
    it prints; we answer once the output received adds up to the next gate. So each piece is
    one chunk, one frame, whatever the machine's timing: chunk boundaries fall where the
    script says (inside a character), and stdout and stderr frames come in the order written.
    """
    for command, row in zip(commands, rows, strict=False):
        waiting = list(gates)
        received = 0
        with client.stream(command, stdin=bool(gates)) as events:
            for event in events:
                if isinstance(event, (rcmd.Stdout, rcmd.Stderr)):
                    if isinstance(event, rcmd.Stdout):
                        row.prefixed_stdout += event.data
                        row.prefixed_chunks.append(event.data)
                    else:
                        row.prefixed_stderr += event.data
                    stream.add_frame(event, row.index)
                    received += len(event.data)
                    if waiting and received == waiting[0]:
                        waiting.pop(0)
                        events.write_stdin(b"go\n")
                        if not waiting:
                            events.close_stdin()
                else:
                    stream.add_frame(event)


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
    for index, row in enumerate(row for scene in scenes for row in scene.rows):
        row.index = index
    streams = {case: Stream("prefixed") for case in (1, 2, 3, 4)}
    with rcmd.connect(*prefixed_address, encoding="utf-8") as client:
        for scene in (scenes[0], scenes[2]):
            prefixed_runs(client, [row.label for row in scene.rows], scene.rows, streams[scene.case])
        # stderr's 4 bytes are one frame before stdout is written: the order is the command's.
        prefixed_runs(client, ["echo err >&2; read go; echo out"], scenes[1].rows, streams[2], gates=(4,))
        utf8 = scenes[3].rows[0]
        prefixed_runs(
            client,
            [f"{FILLER}; read go; printf '\\344'; read go; printf '\\270\\255\\346\\226\\207\\n'"],
            [utf8],
            streams[4],
            gates=(1023, 1024),  # a chunk ends after the x's, and one inside 中
        )
    gbk_stream = Stream("prefixed gbk")
    with rcmd.connect(*prefixed_address, encoding="gbk") as client:
        gbk = scenes[3].rows[1]
        prefixed_runs(
            client,
            [f"{FILLER}; read go; printf '\\326'; read go; printf '\\320\\316\\304\\n'"],
            [gbk],
            gbk_stream,
            gates=(1023, 1024),
        )
    # Scene 3's prefixed stream is the client's: each RUN is its own frame.
    streams[3] = Stream("prefixed")
    for row in scenes[2].rows:
        streams[3].add_frame(rcmd.messages.Run(row.label), row.index)
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


def draw_stream(stream: Stream, keep: int = 5) -> Text:
    """One lane: the stream's bytes in the order sent, and where its reader ended each read.

    Each command's bytes are in its row's colour; long runs are elided except near their
    edges and cuts. A prefixed lane draws each frame as ``[`` length prefix (hex), type,
    body ``]``; a naive lane draws ``┃`` where each recv() returned.
    """
    cuts = set(itertools.accumulate(stream.reads))
    end_mark = FRAME_END if stream.framed else NAIVE_CUT
    line = Text()
    offset = 0
    for piece in stream.pieces:
        if stream.framed and piece.hex:
            line.append(*FRAME_START)  # a frame starts with its length
        if piece.hex:
            line.append(" ".join(f"{byte:02x}" for byte in piece.data), style=PREFIX_STYLE)
        elif piece.label is not None:
            line.append(piece.label, style="dim")
        else:
            assert piece.owner is not None
            data = piece.data
            colour = COLOURS[piece.owner % len(COLOURS)]
            edges = {0, len(data)} | {cut - offset for cut in cuts if offset < cut < offset + len(data)}
            shown = {i for edge in edges for i in range(edge - keep, edge + keep)}
            for i, byte in enumerate(data):
                if i and offset + i in cuts:
                    line.append(*end_mark)
                if i not in shown:
                    if i - 1 in shown:
                        line.append("…", style="dim")
                    continue
                if 32 <= byte < 127 or byte == 10:
                    line.append("⏎" if byte == 10 else chr(byte), style=colour)
                else:  # a space apart, so each <text> of the SVG starts with the byte itself
                    line.append(" ", style=colour)
                    line.append(f"{byte:02x}", style=f"{colour} underline")
        offset += len(piece.data)
        if piece.data and offset in cuts:
            line.append(*end_mark)
    return line


def lanes() -> Table:
    """A grid whose first column names the lane: long lanes wrap under their bytes."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=LANE_WIDTH - 1, no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    return grid


def legend() -> Table:
    """What the lanes and their marks mean.

    No run of text here starts with a space: an SVG viewer may drop it (rsvg does).
    """
    grid = lanes()
    grid.add_row(
        Text("lane", style="underline"),
        Text(
            "the bytes that crossed the connection, first on the left, and where the reader cut them",
            style="underline",
        ),
    )
    grid.add_row(
        "naive",
        Text.assemble(
            (f"{NAIVE_CUT[0]} ", NAIVE_CUT[1]),
            ("one recv(1024) returned here: the naive reader takes what it got as one whole message", ""),
        ),
    )
    grid.add_row(
        "prefixed",
        Text.assemble(
            FRAME_START,
            ("00 00 00 07", PREFIX_STYLE),
            ("‹out›", "dim"),
            ("hello⏎", COLOURS[0]),
            (f"{FRAME_END[0]} ", FRAME_END[1]),
            (
                "one frame: its 4-byte length, big-endian (7 = the type byte and 6 bytes of body), "
                "its type byte (",
                "",
            ),
            ("‹out› ‹err› ‹exit› ‹run›", "dim"),
            (
                "; EXIT and RUN carry JSON, drawn short), its body. The prefixed reader ended the frame at ",
                "",
            ),
            (f"{FRAME_END[0]} ", FRAME_END[1]),
            ("having read exactly the length it was told, however the bytes came in recv()s", ""),
        ),
    )
    grid.add_row(
        "",
        Text.assemble(
            ("… ", "dim"),
            ("bytes left out;  ", ""),
            ("e4", "underline"),
            (": a byte of 中 or 文, in hex;  ⏎ a newline; each command's bytes in a colour of their own", ""),
        ),
    )
    return grid


#: How each case is made to happen on every run: the reader must not wonder if it is staged.
HOW_IT_IS_FORCED = [
    "naive replies: the reader waits (SO_RCVLOWAT) until all it is owed is in its socket buffer, "
    "then makes its one recv(1024), as a slow reader on a fast network does;",
    "case 3: a FIFO keeps the naive server busy (cat …/gate) until `echo a` and `echo b` have both "
    "arrived, as a busy server does;",
    "prefixed, cases 2 and 4: the command waits on its stdin (`read`) after each piece it prints, "
    "and the client answers once that piece has arrived. So each piece is one frame, stderr's before "
    "stdout's, and in case 4 a frame ends inside 中, as a slow pipe can make it end.",
]


def render(console: Console, scenes: list[Scene]) -> dict[str, int]:
    table = Table(title="The same commands, two framings", show_lines=False, expand=False)
    for name in (
        "#",
        "command",
        "what it prints",
        "naive received",
        "naive ok?",
        "prefixed received",
        "prefixed ok?",
    ):
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
    console.print(Text("The byte stream, as each reader cut it", style="bold"))
    console.print(legend())
    for scene in scenes:
        console.print()
        console.print(Text.assemble((f"{scene.case}. {scene.title}: ", "bold"), (scene.lesson, "italic")))
        grid = lanes()
        for stream in scene.streams:
            grid.add_row(stream.title, draw_stream(stream))
        console.print(grid)
    utf8 = scenes[3].rows[0]
    per_chunk = "".join(chunk.decode("utf-8", "replace") for chunk in utf8.prefixed_chunks)
    console.print()
    console.print(
        f"Decoding each prefixed chunk on its own would give …{shorten(per_chunk[-6:], 12)}; "
        f"rcmd's incremental decoder gives …{shorten(utf8.prefixed_text[-6:], 12)}.",
        highlight=False,
    )
    console.print()
    console.print(
        Text(
            "Nothing is staged: every byte drawn crossed a real loopback connection. Only the timing "
            "is forced, into what a network and a machine may always do, so every run draws the same:",
            style="bold",
        )
    )
    how = Table.grid(padding=(0, 1))
    how.add_column(no_wrap=True)
    how.add_column()
    for point in HOW_IT_IS_FORCED:
        how.add_row(" •", point)
    console.print(how)
    return correct


#: rich's SVG page without its web fonts: local monospace fonts only, so it renders offline
#: (and in an <img>, where a browser fetches nothing anyway). CJK falls back to a local font.
SVG_FORMAT = """\
<svg class="rich-terminal" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">
    <!-- rcmd demo: sticky packets. Drawn by `make demo-svg` (rcmd/demo.py, rich RICH_VERSION). -->
    <style>
    .{unique_id}-matrix {{
        font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, "Noto Sans Mono CJK SC",
            "WenQuanYi Micro Hei Mono", "Microsoft YaHei", monospace;
        font-size: {char_height}px;
        line-height: {line_height}px;
        font-variant-east-asian: full-width;
    }}

    .{unique_id}-title {{
        font-size: 18px;
        font-weight: bold;
        font-family: "DejaVu Sans", "Liberation Sans", Helvetica, Arial, sans-serif;
    }}

    {styles}
    </style>

    <defs>
    <clipPath id="{unique_id}-clip-terminal">
      <rect x="0" y="0" width="{terminal_width}" height="{terminal_height}" />
    </clipPath>
    {lines}
    </defs>

    {chrome}
    <g transform="translate({terminal_x}, {terminal_y})" clip-path="url(#{unique_id}-clip-terminal)">
    {backgrounds}
    <g class="{unique_id}-matrix">
    {matrix}
    </g>
    </g>
</svg>
"""


def render_svg(scenes: list[Scene]) -> str:
    """The table and the picture as an SVG page, the same bytes for the same scenes.

    Drawn on a console of its own, set explicitly (width, colours, no NO_COLOR), so
    neither the terminal nor the environment it runs in changes a byte.
    """
    console = Console(
        file=io.StringIO(),
        record=True,
        width=SVG_WIDTH,
        height=25,
        color_system="truecolor",
        force_terminal=True,
        force_jupyter=False,
        force_interactive=False,
        no_color=False,
        legacy_windows=False,
        emoji=False,
        highlight=True,
    )
    render(console, scenes)
    return console.export_svg(
        title="rcmd demo: sticky packets and the length prefix",
        code_format=SVG_FORMAT.replace("RICH_VERSION", version("rich")),
        font_aspect_ratio=0.6,  # DejaVu Sans Mono, Liberation Mono, Menlo: 0.6 em wide
        unique_id="rcmd-demo",
    )


def svg_difference(committed: str, fresh: str, context: int = 2) -> str:
    """The first lines where two SVG pages differ, for a test's failure message."""
    diff = difflib.unified_diff(
        committed.splitlines(), fresh.splitlines(), "committed", "fresh", n=context, lineterm=""
    )
    return "\n".join(itertools.islice(diff, 40))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rcmd demo", description="Sticky packets and their fix, side by side."
    )
    parser.add_argument("--svg", metavar="FILE", help="also save the table and picture as an SVG image")
    args = parser.parse_args(argv)
    if args.svg:
        folder = os.path.dirname(os.path.abspath(args.svg))
        if not os.path.isdir(folder):  # say so now, not after the whole demo ran
            print(f"rcmd demo: cannot write {args.svg}: no such directory {folder}", file=sys.stderr)
            return 2
    with (
        rcmd.BackgroundServer(framing="naive", encoding="utf-8", cwd="/") as naive,
        rcmd.BackgroundServer(encoding="utf-8", cwd="/") as prefixed,
    ):
        scenes = build_scenes(naive.address, prefixed.address)
    correct = render(Console(), scenes)
    if args.svg:
        try:
            with open(args.svg, "w", encoding="utf-8", newline="") as file:
                file.write(render_svg(scenes))
        except OSError as exc:
            print(f"rcmd demo: cannot write {args.svg}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    rows = sum(len(scene.rows) for scene in scenes)
    return 0 if correct["prefixed"] == rows and correct["naive"] < rows else 1


if __name__ == "__main__":
    raise SystemExit(main())
