"""rcmd's messages and how each is laid out in a frame's payload. Sans-I/O.

A payload is one type byte followed by a body (docs/PROTOCOL.md has every byte):

* output and input data (STDIN, STDOUT, STDERR): the raw bytes, nothing else, so the
  bulk of the traffic carries one byte of overhead and is never transcoded;
* STDIN_END and CANCEL: no body;
* control messages (HELLO, RUN, EXIT, ERROR): a UTF-8 JSON object. Unknown keys are
  ignored, so later versions can add fields without breaking older peers.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence

from .errors import RemoteProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (2 ms of `rcmd -c`)
if TYPE_CHECKING:  # what these are: frozen dataclasses with slots
    from dataclasses import dataclass, field
    from typing import Any, ClassVar
else:  # the same classes, made without the dataclasses module's cost (rcmd.records)
    from .records import dataclass, field

#: Version of the message set; both HELLOs carry it and a mismatch is refused.
PROTOCOL_VERSION = 1

#: EXIT status of a RUN the server refuses to run as given (Run.refusal()), after a STDERR
#: ``rcmd: refused: REASON``. 126 is the shell's "found but cannot be executed"; a command
#: that cannot be started at all (a missing cwd) gets 127, "not found".
REFUSED = 126


class MessageType(enum.IntEnum):
    """The type byte that starts every payload."""

    HELLO = 0x01  # both directions, first message each way
    RUN = 0x02  # client -> server
    STDIN = 0x03  # client -> server
    STDIN_END = 0x04  # client -> server
    CANCEL = 0x05  # client -> server
    AUTH_OK = 0x06  # server -> client, after a HELLO that asked for authentication
    WINDOW_CHANGE = 0x07  # client -> server, the terminal of a command run with a PTY was resized
    PING = 0x08  # client -> server, a no-op that keeps an idle connection alive; PONG answers
    COMPLETE = 0x09  # client -> server, while idle: complete a word of the prompt's line (Tab)
    STDOUT = 0x10  # server -> client
    STDERR = 0x11  # server -> client
    EXIT = 0x12  # server -> client
    PONG = 0x13  # server -> client, the answer to PING
    COMPLETIONS = 0x14  # server -> client, the answer to COMPLETE
    # Files (rcmd.files, rcmd.server.files): 0x20-0x2F.
    PUT = 0x20  # client -> server: upload a file
    GET = 0x21  # client -> server: download a file
    PUT_READY = 0x22  # server -> client: the upload may start; what is kept of an earlier one
    PUT_FROM = 0x23  # client -> server: the upload's data starts at this offset
    GET_READY = 0x24  # server -> client: the download's size, and the offset its data starts at
    FILE_DATA = 0x25  # the sender of a transfer -> the receiver
    FILE_END = 0x26  # the sender of a transfer -> the receiver: size and SHA-256 of the whole file
    FILE_DONE = 0x27  # server -> client: the upload is verified and has its name
    FILE_ERROR = 0x28  # server -> client: a file request failed; the connection goes on
    FS = 0x29  # client -> server: ls, stat, cd, pwd, mkdir, rm, rmdir, df
    FS_RESULT = 0x2A  # server -> client: the answer to FS
    # Accounts (rcmd.scram, rcmd.server.accounts): 0x30-0x3F.
    AUTH_CHALLENGE = 0x30  # server -> client: the user's salt and iteration count (SCRAM)
    AUTH_PROOF = 0x31  # client -> server: the client's SCRAM proof
    ERROR = 0x7F  # both directions, last message before closing


class Message:
    """Base class of every message (events, in h11's terms)."""

    __slots__ = ()
    TYPE: ClassVar[MessageType]


# ----------------------------------------------------------------- control messages (JSON)


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """First message in each direction: who is talking, in which protocol version.

    The server's hello also says which encoding its commands print in and the working
    directory new commands start in. With authentication (rcmd.auth), the server's hello
    has ``auth`` and its ``nonce``; the client's has its ``nonce`` and ``mac`` (its proof),
    all hex. A server lists the *extensions* it speaks (``"pty"``: RUN's ``pty`` and
    WINDOW_CHANGE; ``"ping"``: PING and PONG) and its *idle_timeout* in seconds, so a client
    can keep an idle connection alive; a client sends none of these to a server without them.
    A server's *max_frame_size* is the largest payload it takes after the handshake: a client
    sizes its STDIN and FILE_DATA chunks to fit (data_chunk_size()).
    """

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    protocol: int = PROTOCOL_VERSION
    software: str = ""
    encoding: str | None = None
    cwd: str | None = None
    auth: str | None = None
    nonce: str | None = None
    mac: str | None = None
    extensions: tuple[str, ...] | None = None
    idle_timeout: float | None = None
    user: str | None = None  # client only, with auth "scram-sha-256": who logs in
    max_frame_size: int | None = None  # server only: the largest payload it takes after the handshake


#: The smallest and largest frame limit a HELLO may announce: a server's limit must hold a
#: client's HELLO with authentication (~190 bytes; rcmd-server's --max-frame-size starts at
#: 256 for that reason), and a length prefix is an unsigned 32-bit integer.
MIN_ANNOUNCED_FRAME_SIZE = 256
MAX_ANNOUNCED_FRAME_SIZE = 2**32 - 1
#: The largest STDIN or FILE_DATA chunk a client sends, as large as the server's output
#: chunks (rcmd.process.OUTPUT_CHUNK_SIZE): uploads then go as fast as downloads.
MAX_DATA_CHUNK = 256 * 1024
#: STDIN chunks to a server that does not announce its limit (an older or third-party one):
#: 64 KiB, what the spec always promised such a server.
UNANNOUNCED_STDIN_CHUNK = 64 * 1024


def data_chunk_size(server_hello: Hello | None, unannounced: int) -> int:
    """The largest STDIN or FILE_DATA chunk to send to the server of *server_hello*: at most
    MAX_DATA_CHUNK, and one byte (the type byte) under its announced ``max_frame_size``;
    *unannounced* when it announces none (UNANNOUNCED_STDIN_CHUNK for STDIN, MAX_DATA_CHUNK
    for FILE_DATA: docs/PROTOCOL.md §2)."""
    limit = None if server_hello is None else server_hello.max_frame_size
    return unannounced if limit is None else min(MAX_DATA_CHUNK, limit - 1)


#: PTY sizes are 16-bit in the kernel's struct winsize; a term type is a short name.
MAX_TERMINAL_DIMENSION = 0xFFFF
MAX_TERM_LENGTH = 64


@dataclass(frozen=True, slots=True)
class PtyRequest:
    """RUN's ``pty``: run the command on a pseudo-terminal of this type and size (as ssh's
    "pty-req", RFC 4254 6.2). Its output is then one stream, STDOUT (stderr is the terminal too)."""

    term: str = "xterm"
    rows: int = 24
    cols: int = 80


@dataclass(frozen=True, slots=True)
class Run(Message):
    """Run one command line in the server's shell.

    *cwd* overrides the connection's working directory for this command only; *env* is
    added to the server's environment; *timeout* (seconds) kills the command's process
    group when it runs out; *stdin* says whether STDIN messages will follow (otherwise
    the command's stdin is empty, so a command that reads it does not hang). *pty* runs
    it on a pseudo-terminal (a server without the "pty" extension ignores it).
    """

    TYPE: ClassVar[MessageType] = MessageType.RUN
    command: str
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    stdin: bool = False
    pty: PtyRequest | None = None

    def refusal(self) -> str | None:
        """Why a server cannot run this command as given, or None.

        A NUL character in the command, cwd or env (the operating system ends strings
        there), a lone surrogate in them (not text: it has no UTF-8 form), an env name that
        is empty or holds ``=``. The message itself is well-formed: a server answers it with
        STDERR ``rcmd: refused: REASON`` and EXIT :data:`REFUSED`, and the connection goes
        on; encode_message() raises ValueError for it, so our client never sends one.
        Linear in the size of the message.
        """
        return _run_refusal(self)


@dataclass(frozen=True, slots=True)
class Exit(Message):
    """How a command ended; always the last message for that command.

    *returncode* follows ``subprocess``: the exit status, or ``-N`` when signal N ended it
    (then *signal* is N too). *timed_out* and *cancelled* say why rcmd killed it, if it did.
    *cwd* is the connection's working directory after the command (``cd`` changes it).
    """

    TYPE: ClassVar[MessageType] = MessageType.EXIT
    returncode: int
    signal: int | None = None
    timed_out: bool = False
    cancelled: bool = False
    cwd: str | None = None


@dataclass(frozen=True, slots=True)
class AuthOk(Message):
    """The server accepted the client's proof, and proves itself with *mac* (hex)."""

    TYPE: ClassVar[MessageType] = MessageType.AUTH_OK
    mac: str
    cwd: str | None = None  # after a login as a user (4c): the directory the user starts in
    transfer_only: bool | None = None  # after a login (4c): true if the user may not run commands


@dataclass(frozen=True, slots=True)
class Error(Message):
    """A readable reason, sent just before closing the connection."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    reason: str


# ------------------------------------------------------------------------ data messages


@dataclass(frozen=True, slots=True)
class Stdin(Message):
    TYPE: ClassVar[MessageType] = MessageType.STDIN
    data: bytes


@dataclass(frozen=True, slots=True)
class Stdout(Message):
    TYPE: ClassVar[MessageType] = MessageType.STDOUT
    data: bytes


@dataclass(frozen=True, slots=True)
class Stderr(Message):
    TYPE: ClassVar[MessageType] = MessageType.STDERR
    data: bytes


@dataclass(frozen=True, slots=True)
class StdinEnd(Message):
    """No more stdin: the command reads EOF."""

    TYPE: ClassVar[MessageType] = MessageType.STDIN_END


@dataclass(frozen=True, slots=True)
class Cancel(Message):
    """Kill the running command's process group; the server still sends its EXIT."""

    TYPE: ClassVar[MessageType] = MessageType.CANCEL


@dataclass(frozen=True, slots=True)
class WindowChange(Message):
    """The client's terminal is now *rows* x *cols* (ssh's "window-change", RFC 4254 6.7)."""

    TYPE: ClassVar[MessageType] = MessageType.WINDOW_CHANGE
    rows: int
    cols: int


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """A no-op the server answers with PONG: proves the connection alive, resets its idle timer."""

    TYPE: ClassVar[MessageType] = MessageType.PING


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """The answer to PING."""

    TYPE: ClassVar[MessageType] = MessageType.PONG


# ------------------------------------------------------- completion (extension "complete")

#: What COMPLETE may complete: a file name, or a command name (the first word of a command).
COMPLETION_KINDS = ("path", "command")
#: COMPLETE's text is at most this long: PATH_MAX on Linux, so a longer word names no file.
MAX_COMPLETION_TEXT = 4096
#: COMPLETIONS holds at most this many items, of at most MAX_COMPLETION_BYTES in all (UTF-8):
#: far more than a person reads (bash asks before it shows 100), and 64 KiB is a quarter of
#: the 256 KiB frame every client accepts, whatever names a directory holds.
MAX_COMPLETIONS = 1000
MAX_COMPLETION_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Complete(Message):
    """Complete *text*, one word of the prompt's line with its quotes and escapes removed:
    a path (relative to the connection's directory; a leading ``~`` is the server's home), or
    with *kind* ``"command"`` a command name (from the server's PATH, and its shell's builtins)."""

    TYPE: ClassVar[MessageType] = MessageType.COMPLETE
    text: str
    kind: str = "path"


@dataclass(frozen=True, slots=True)
class Completions(Message):
    """The answer to COMPLETE: every *item* starts with its text; a directory ends in ``/``.
    Sorted, at most MAX_COMPLETIONS; *truncated*: more matched than were listed or looked at."""

    TYPE: ClassVar[MessageType] = MessageType.COMPLETIONS
    items: Sequence[str] = ()
    truncated: bool = False


# ------------------------------------------------------------------ files (0x20 to 0x2F)


@dataclass(frozen=True, slots=True)
class Put(Message):
    """Upload a file to *path* (relative to the connection's directory).

    *size* is the number of bytes that will follow, when known; *mode* (permission bits) and
    *mtime* (seconds since the epoch) are applied to the file when given (``-p``). With
    *resume*, a partial file kept from an earlier attempt is offered back in PUT_READY.
    """

    TYPE: ClassVar[MessageType] = MessageType.PUT
    path: str
    size: int | None = None
    mode: int | None = None
    mtime: float | None = None
    resume: bool = True


@dataclass(frozen=True, slots=True)
class Get(Message):
    """Download the file at *path*. A client that kept *partial* bytes of an earlier attempt
    sends their SHA-256 in *blocks* of *block_size* bytes each (the last may be shorter)."""

    TYPE: ClassVar[MessageType] = MessageType.GET
    path: str
    partial: int = 0
    block_size: int | None = None
    blocks: Sequence[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PutReady(Message):
    """The server takes the upload. It kept *partial* bytes of an earlier one; *blocks* are
    their SHA-256, *block_size* bytes each (the last may be shorter)."""

    TYPE: ClassVar[MessageType] = MessageType.PUT_READY
    partial: int = 0
    block_size: int | None = None
    blocks: Sequence[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class PutFrom(Message):
    """The upload's FILE_DATA starts at *offset*: the kept bytes before it are good."""

    TYPE: ClassVar[MessageType] = MessageType.PUT_FROM
    offset: int


@dataclass(frozen=True, slots=True)
class GetReady(Message):
    """The download: *size* bytes in all, FILE_DATA from *offset* on."""

    TYPE: ClassVar[MessageType] = MessageType.GET_READY
    size: int
    offset: int = 0
    mode: int | None = None
    mtime: float | None = None


@dataclass(frozen=True, slots=True)
class FileData(Message):
    TYPE: ClassVar[MessageType] = MessageType.FILE_DATA
    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd(Message):
    """The sender has sent everything: the whole file is *size* bytes with this *sha256*
    (hex). *error* set: the sender gives up (its file changed while it was being read)."""

    TYPE: ClassVar[MessageType] = MessageType.FILE_END
    size: int
    sha256: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FileDone(Message):
    """The upload was verified and renamed into place; *resumed_from* bytes were kept."""

    TYPE: ClassVar[MessageType] = MessageType.FILE_DONE
    size: int
    sha256: str
    resumed_from: int = 0


@dataclass(frozen=True, slots=True)
class FileError(Message):
    """A file request failed (the connection goes on); *kept* bytes stay for a resume."""

    TYPE: ClassVar[MessageType] = MessageType.FILE_ERROR
    reason: str
    kept: int = 0


@dataclass(frozen=True, slots=True)
class Fs(Message):
    """A file operation: *op* is one of FS_OPS, on *path* where it takes one; for ``ls``,
    *after* asks for the entries whose names sort after it (the next page of a listing)."""

    TYPE: ClassVar[MessageType] = MessageType.FS
    op: str
    path: str | None = None
    after: str | None = None


@dataclass(frozen=True, slots=True)
class FsResult(Message):
    """The answer to FS: the directory the connection is in (*cwd*), the *entries* of ``ls``
    and ``stat`` (objects with name, type, size, mode, mtime), *used* and *quota* for ``df``;
    *truncated* is true when ``ls`` left entries out (more than a listing holds)."""

    TYPE: ClassVar[MessageType] = MessageType.FS_RESULT
    cwd: str | None = None
    entries: Sequence[Mapping[str, Any]] | None = None
    used: int | None = None
    quota: int | None = None
    truncated: bool | None = None


#: The operations an FS message may ask for.
FS_OPS = ("pwd", "cd", "ls", "stat", "mkdir", "rm", "rmdir", "df")


# --------------------------------------------------------------- accounts (0x30 to 0x3F)


@dataclass(frozen=True, slots=True)
class AuthChallenge(Message):
    """SCRAM: the salt (hex) and PBKDF2 iteration count of the user the client named."""

    TYPE: ClassVar[MessageType] = MessageType.AUTH_CHALLENGE
    salt: str
    iterations: int


@dataclass(frozen=True, slots=True)
class AuthProof(Message):
    """SCRAM: the client's proof (hex), ClientKey XOR ClientSignature."""

    TYPE: ClassVar[MessageType] = MessageType.AUTH_PROOF
    proof: str


AnyMessage = (
    Hello
    | Run
    | Exit
    | AuthOk
    | Error
    | Stdin
    | Stdout
    | Stderr
    | StdinEnd
    | Cancel
    | WindowChange
    | Ping
    | Pong
    | Put
    | Get
    | PutReady
    | PutFrom
    | GetReady
    | FileData
    | FileEnd
    | FileDone
    | FileError
    | Fs
    | FsResult
    | AuthChallenge
    | AuthProof
    | Complete
    | Completions
)
OutputChunk = Stdout | Stderr

_DATA = (Stdin, Stdout, Stderr, FileData)
_EMPTY = (StdinEnd, Cancel, Ping, Pong)
_BY_TYPE: dict[int, type[Message]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Run,
        Exit,
        AuthOk,
        Error,
        Stdin,
        Stdout,
        Stderr,
        StdinEnd,
        Cancel,
        WindowChange,
        Ping,
        Pong,
        *(Put, Get, PutReady, PutFrom, GetReady, FileData, FileEnd, FileDone, FileError, Fs, FsResult),
        *(AuthChallenge, AuthProof),
        *(Complete, Completions),
    )
}

# --------------------------------------------------------------- the schema of JSON bodies

#: A JSON body may nest at most this deep (the body object is level 1, RUN's env level 2).
#: Without a bound, "[[[[..." makes a recursive parser run out of stack (RecursionError);
#: with one, every peer on every platform gets the same answer, far below any stack limit.
MAX_JSON_DEPTH = 32

#: A JSON body may hold at most this many tokens: strings (keys included), opening brackets,
#: commas and colons, counted outside strings (N keys and values make fewer than 3N). A parser
#: costs what it builds, not what it reads: a 1 MiB RUN of 300,000 empty lists held the
#: server's event loop 0.3 s, nested ones 1 s, while every other client waited. Counted in
#: C before parsing, the bound keeps any body to a few ms (benchmarks/soak.py --worst). 8,192
#: is far above any real body: a RUN with 2,000 env variables has ~8,000 (4 each), a GET
#: with MAX_BLOCKS hashes ~2,050. FS_RESULT (server to client: an ``ls``) is not bound.
MAX_JSON_TOKENS = 8192

#: Integers in JSON bodies (protocol version, exit status, signal) fit in 32 bits, as they
#: do in C and in every peer's native integers.
_INT32 = range(-(2**31), 2**31)

#: The regular expressions here are patterns, compiled on first use (re caches them): compiled
#: at import, they were 0.4 ms of every `rcmd -c`, which uses none of them.
_SURROGATE = "[\ud800-\udfff]"


def _has_surrogate(value: str) -> bool:
    """Whether *value* holds a lone surrogate (json decodes "\\ud800" to one; os.fsdecode
    makes one of each byte that is not UTF-8). Encoding is about ten times quicker than
    searching with a regular expression: ~1 ms at 1 MiB."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _text(value: str) -> str | None:
    """What is wrong with a JSON string: a lone surrogate (json decodes "\\ud800" to one) is
    not Unicode text, has no UTF-8 form, and cannot be printed or passed on."""
    return "is not Unicode text (it holds a lone surrogate)" if _has_surrogate(value) else None


def _int32(value: int) -> str | None:
    return None if value in _INT32 else "is out of range (a 32-bit integer)"


def _version(value: int) -> str | None:
    return None if 0 <= value < 2**31 else "is out of range (0 to 2**31-1)"


def _seconds(value: float) -> str | None:
    if not math.isfinite(value):
        return "is not a finite number"
    return None if value > 0 else "must be a positive number of seconds"


def _string_map(value: dict[Any, Any]) -> str | None:
    ok = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    return None if ok else "must map strings to strings"


def _nothing(value: Any) -> str | None:
    return None


def _string_list(value: list[Any] | tuple[Any, ...]) -> str | None:
    return None if all(isinstance(item, str) for item in value) else "must be a list of strings"


def _dimension(value: int) -> str | None:
    ok = 0 <= value <= MAX_TERMINAL_DIMENSION
    return None if ok else f"must be an integer from 0 to {MAX_TERMINAL_DIMENSION}"


def _pty_problem(value: dict[str, Any]) -> str | None:
    """RUN's ``pty`` object: ``term`` a short printable name, ``rows``/``cols`` 16-bit."""
    term = value.get("term", "xterm")
    if not isinstance(term, str) or not 0 < len(term) <= MAX_TERM_LENGTH or not term.isprintable():
        return f"has a bad term: pty.term must be a printable name of 1 to {MAX_TERM_LENGTH} characters"
    for key in ("rows", "cols"):
        size = value.get(key, 0)
        if isinstance(size, bool) or not isinstance(size, int) or _dimension(size) is not None:
            return f"{key!r} must be an integer from 0 to {MAX_TERMINAL_DIMENSION}"
    return None


#: File sizes and offsets are exact in an IEEE double (JSON numbers, for any peer) up to this.
MAX_FILE_SIZE = 2**53 - 1
#: PUT_READY and GET describe a kept partial file in at most this many block hashes: ~70 KiB
#: of JSON, well under the 256 KiB frames every client accepts, whatever the file's size.
MAX_BLOCKS = 1024
_HEX64 = "[0-9a-fA-F]{64}"


def _file_size(value: int) -> str | None:
    return None if 0 <= value <= MAX_FILE_SIZE else "is out of range (0 to 2**53-1)"


def _frame_limit(value: int) -> str | None:
    ok = MIN_ANNOUNCED_FRAME_SIZE <= value <= MAX_ANNOUNCED_FRAME_SIZE
    return None if ok else f"is out of range ({MIN_ANNOUNCED_FRAME_SIZE} to 2**32-1 bytes)"


def _block_size(value: int) -> str | None:
    return None if 0 < value <= MAX_FILE_SIZE else "is out of range (1 to 2**53-1)"


def _mode(value: int) -> str | None:
    return None if 0 <= value <= 0o7777 else "is out of range (permission bits, 0 to 0o7777)"


def _finite(value: float) -> str | None:
    return None if math.isfinite(value) else "is not a finite number"


def _sha256(value: str) -> str | None:
    return None if re.fullmatch(_HEX64, value) else "must be 64 hex digits (a SHA-256)"


def _block_hashes(value: list[Any]) -> str | None:
    if len(value) > MAX_BLOCKS:
        return f"holds more than {MAX_BLOCKS} hashes"
    sha256 = re.compile(_HEX64)
    ok = all(isinstance(item, str) and sha256.fullmatch(item) for item in value)
    return None if ok else "must be a list of SHA-256s (64 hex digits each)"


def _fs_op(value: str) -> str | None:
    return None if value in FS_OPS else f"must be one of {', '.join(FS_OPS)}"


def _entries(value: list[Any] | None) -> str | None:
    ok = value is None or all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in value)
    return None if ok else "must be a list of objects, each with a string 'name'"


def _hex(value: str) -> str | None:
    return None if re.fullmatch("(?:[0-9a-fA-F]{2}){8,64}", value) else "must be 8 to 64 bytes in hex"


def _iterations(value: int) -> str | None:
    return None if 1 <= value < 2**31 else "is out of range (1 to 2**31-1)"


def _completion_text(value: str) -> str | None:
    if len(value) > MAX_COMPLETION_TEXT:
        return f"is longer than {MAX_COMPLETION_TEXT} characters"
    return _text(value)


def _completion_kind(value: str) -> str | None:
    return None if value in COMPLETION_KINDS else f"must be one of {', '.join(COMPLETION_KINDS)}"


def _completion_items(value: list[Any] | tuple[Any, ...]) -> str | None:
    if len(value) > MAX_COMPLETIONS:
        return f"holds more than {MAX_COMPLETIONS} items"
    if not all(isinstance(item, str) and not _has_surrogate(item) for item in value):
        return "must be a list of strings (Unicode text)"
    if sum(len(item.encode("utf-8")) for item in value) > MAX_COMPLETION_BYTES:
        return f"holds more than {MAX_COMPLETION_BYTES} bytes"
    return None


@dataclass(frozen=True, slots=True)
class _Field:
    """One key of a JSON body: the JSON types it takes (``type(None)``: it may be null),
    whether it must be there, and *check*, what else is wrong with a value (a reason, or
    None). A *display* field is text for people (a path, a reason): we send each lone
    surrogate in it (an undecodable byte, as ``os.fsdecode`` gives it) as U+FFFD."""

    types: tuple[type, ...]
    required: bool = False
    check: Callable[[Any], str | None] = _nothing
    display: bool = False


_STR = (str,)
_OPTIONAL_STR = (str, type(None))
_NUMBER = (int, float, type(None))
_SIZE = _Field((int,), required=True, check=_file_size)
_BLOCKS = _Field((list, tuple), check=_block_hashes)
_OPTIONAL_INT = (int, type(None))

#: Every field of every JSON body, written once: decode_message() checks what it receives
#: against it (RemoteProtocolError), encode_message() what it sends (TypeError, ValueError).
#: bool is checked apart from int, since in Python a bool is an int and ``"returncode": true``
#: must not pass for 1. RUN's command, cwd and env are not checked for lone surrogates here:
#: a RUN the server cannot run is refused, not a protocol error (Run.refusal()).
SCHEMA: dict[type[Message], dict[str, _Field]] = {
    Hello: {
        "protocol": _Field((int,), required=True, check=_version),
        "software": _Field(_STR, check=_text, display=True),
        "encoding": _Field(_OPTIONAL_STR, check=_text),
        "cwd": _Field(_OPTIONAL_STR, check=_text, display=True),
        "auth": _Field(_OPTIONAL_STR, check=_text),
        "nonce": _Field(_OPTIONAL_STR, check=_text),
        "mac": _Field(_OPTIONAL_STR, check=_text),
        "extensions": _Field((list, tuple, type(None)), check=_string_list),
        "idle_timeout": _Field(_NUMBER, check=_seconds),
        "user": _Field(_OPTIONAL_STR, check=_text),
        "max_frame_size": _Field(_OPTIONAL_INT, check=_frame_limit),
    },
    Run: {
        "command": _Field(_STR, required=True),
        "cwd": _Field(_OPTIONAL_STR),
        "env": _Field((dict,), check=_string_map),
        "timeout": _Field(_NUMBER, check=_seconds),
        "stdin": _Field((bool,)),
        "pty": _Field((dict, type(None)), check=_pty_problem),
    },
    Exit: {
        "returncode": _Field((int,), required=True, check=_int32),
        "signal": _Field((int, type(None)), check=_int32),
        "timed_out": _Field((bool,)),
        "cancelled": _Field((bool,)),
        "cwd": _Field(_OPTIONAL_STR, check=_text, display=True),
    },
    AuthOk: {
        "mac": _Field(_STR, required=True, check=_text),
        "cwd": _Field(_OPTIONAL_STR, check=_text, display=True),
        "transfer_only": _Field((bool, type(None))),
    },
    Error: {"reason": _Field(_STR, required=True, check=_text, display=True)},
    WindowChange: {
        "rows": _Field((int,), required=True, check=_dimension),
        "cols": _Field((int,), required=True, check=_dimension),
    },
    Put: {
        "path": _Field(_STR, required=True, check=_text),
        "size": _Field(_OPTIONAL_INT, check=_file_size),
        "mode": _Field(_OPTIONAL_INT, check=_mode),
        "mtime": _Field(_NUMBER, check=_finite),
        "resume": _Field((bool,)),
    },
    Get: {
        "path": _Field(_STR, required=True, check=_text),
        "partial": _Field((int,), check=_file_size),
        "block_size": _Field(_OPTIONAL_INT, check=_block_size),
        "blocks": _BLOCKS,
    },
    PutReady: {
        "partial": _Field((int,), check=_file_size),
        "block_size": _Field(_OPTIONAL_INT, check=_block_size),
        "blocks": _BLOCKS,
    },
    PutFrom: {"offset": _SIZE},
    GetReady: {
        "size": _SIZE,
        "offset": _Field((int,), check=_file_size),
        "mode": _Field(_OPTIONAL_INT, check=_mode),
        "mtime": _Field(_NUMBER, check=_finite),
    },
    FileEnd: {
        "size": _SIZE,
        "sha256": _Field(_STR, required=True, check=_sha256),
        "error": _Field(_OPTIONAL_STR, check=_text, display=True),
    },
    FileDone: {
        "size": _SIZE,
        "sha256": _Field(_STR, required=True, check=_sha256),
        "resumed_from": _Field((int,), check=_file_size),
    },
    FileError: {
        "reason": _Field(_STR, required=True, check=_text, display=True),
        "kept": _Field((int,), check=_file_size),
    },
    Fs: {
        "op": _Field(_STR, required=True, check=_fs_op),
        "path": _Field(_OPTIONAL_STR, check=_text),
        "after": _Field(_OPTIONAL_STR, check=_text),
    },
    FsResult: {
        "cwd": _Field(_OPTIONAL_STR, check=_text, display=True),
        "entries": _Field((list, tuple, type(None)), check=_entries),
        "used": _Field(_OPTIONAL_INT, check=_file_size),
        "quota": _Field(_OPTIONAL_INT, check=_file_size),
        "truncated": _Field((bool, type(None))),
    },
    AuthChallenge: {
        "salt": _Field(_STR, required=True, check=_hex),
        "iterations": _Field((int,), required=True, check=_iterations),
    },
    AuthProof: {"proof": _Field(_STR, required=True, check=_sha256)},
    Complete: {
        "text": _Field(_STR, required=True, check=_completion_text),
        "kind": _Field(_STR, required=True, check=_completion_kind),
    },
    Completions: {
        "items": _Field((list, tuple), required=True, check=_completion_items),
        "truncated": _Field((bool,)),
    },
}


def _wrong_type(field: _Field, value: Any) -> bool:
    return (isinstance(value, bool) and bool not in field.types) or not isinstance(value, field.types)


def _unrunnable(value: str) -> str | None:
    """Why a string cannot be handed to the operating system as it is, or None."""
    if "\0" in value:
        return "NUL character"  # C strings end there: the command would be cut short
    if _has_surrogate(value):
        return "lone surrogate"  # not text: it has no bytes in UTF-8
    return None


def _run_refusal(run: Run) -> str | None:
    for name, value in (("command", run.command), ("cwd", run.cwd)):
        if value is not None and (problem := _unrunnable(value)):
            return f"{problem} in {name!r}"
    env = run.env
    if env and "" not in env:
        # Every name and value at once, in C (a Python loop over thousands is milliseconds);
        # the loop below runs only to name what is wrong.
        names, values = "".join(env), "".join(env.values())
        if "=" not in names and _unrunnable(names) is None and _unrunnable(values) is None:
            return None
    for key, value in env.items():
        if not key:
            return "empty env name"
        if (problem := _unrunnable(key)) is not None:
            return f"{problem} in env name {key!r}"
        if "=" in key:
            return f"'=' in env name {key!r}"  # the OS splits NAME=VALUE at the first '='
        if (problem := _unrunnable(value)) is not None:
            return f"{problem} in env value {key!r}"
    return None


def encode_message(message: Message) -> bytes:
    """The payload for *message* (to be framed): type byte plus body."""
    kind, body = encode_message_parts(message)
    return kind + body


def encode_message_parts(message: Message) -> tuple[bytes, bytes]:
    """The payload for *message* in two parts, type byte and body, so that a large body
    (the data of STDOUT, STDERR, STDIN) is passed on as it is, never copied here.

    Checks the fields against the schema first, so we never send what a peer must refuse:
    TypeError for a field of the wrong type, ValueError for a bad value (a NaN timeout, a
    lone surrogate in a mac) or for a RUN a server would refuse (Run.refusal).
    """
    kind = bytes((message.TYPE,))
    if isinstance(message, _DATA):
        return kind, message.data
    if isinstance(message, _EMPTY):
        return kind, b""
    name = message.TYPE.name
    body: dict[str, Any] = {}
    for key, spec in SCHEMA[type(message)].items():
        value = getattr(message, key)
        if value is None and not spec.required:
            continue  # left out: the receiver reads absent as None
        if isinstance(value, Mapping):
            value = dict(value)
        elif isinstance(value, PtyRequest):
            value = {"term": value.term, "rows": value.rows, "cols": value.cols}
        elif spec.display and isinstance(value, str) and _has_surrogate(value):
            value = re.sub(_SURROGATE, "\ufffd", value)
        if _wrong_type(spec, value):
            raise TypeError(f"{name} field {key!r} has the wrong type ({type(value).__name__})")
        if (problem := spec.check(value)) is not None:
            raise ValueError(f"{name} field {key!r} {problem}")
        body[key] = value
    if isinstance(message, Run) and (reason := message.refusal()) is not None:
        raise ValueError(f"RUN would be refused: {reason}")
    return kind, _JSON_ENCODER.encode(body).encode("utf-8")


def decode_message(payload: bytes) -> AnyMessage:
    """Parse one payload. Raises :class:`RemoteProtocolError` saying what is wrong with it."""
    return decode_message_parts(payload[0] if payload else None, payload[1:])


def decode_message_parts(kind: int | None, body: bytes) -> AnyMessage:
    """decode_message() for a payload already split into its type byte (None: the payload
    was empty) and its body, which a data message keeps as it is.

    Raises :class:`RemoteProtocolError` for anything that breaks the schema, and nothing
    else. A RUN that is well-formed but cannot be run is returned: see Run.refusal().
    """
    if kind is None:
        raise RemoteProtocolError("empty payload: every message starts with a type byte")
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise RemoteProtocolError(f"unknown message type 0x{kind:02x}")
    if cls in _DATA:
        return cls(body)
    if cls in _EMPTY:
        if body:
            raise RemoteProtocolError(f"{cls.TYPE.name} takes no body, got {len(body)} bytes")
        return cls()
    return cls(**_parse_json_body(cls, body))  # type: ignore[return-value]


class _NotJson(ValueError):
    """Raised from inside json.loads for a number JSON does not have."""


def _reject_constant(token: str) -> Any:
    raise _NotJson(f"{token} is not JSON")  # Python's json reads NaN and Infinity; RFC 8259 does not


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NotJson(f"the number {token[:20]} is not a finite number")  # 1e400 reads as inf
    return value


#: One encoder and one decoder for every message: json.dumps() and json.loads() given options
#: build a new one each call (a decoder compiles its scanner), a third of what a small RUN or
#: EXIT costs to encode or decode.
_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def _too_deep(obj: dict[str, Any] | list[Any]) -> bool:
    """Whether *obj* nests deeper than MAX_JSON_DEPTH: level by level, without recursion,
    and in comprehensions (a body of 300,000 empty lists takes 60 ms, against 150 ms for
    json.loads to build them; a body with few containers, microseconds)."""
    level: list[Any] = [obj]
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


#: Every byte but those that start a JSON token outside a string (`"`, `,`, `:`, `[`, `{`).
_NOT_TOKEN_MARKS = bytes(set(range(256)) - set(b'",:[{'))
_STRING = rb'"[^"]*"'
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def _too_many_tokens(body: bytes) -> bool:
    """Whether *body* holds more than MAX_JSON_TOKENS tokens: a few passes in C over its
    bytes, before any parsing (~1 ms a MiB). Marks inside strings count too, and a string's
    two quotes count twice, so a body that has more marks than the bound is counted again,
    its strings taken out."""
    if len(body.translate(None, _NOT_TOKEN_MARKS)) <= MAX_JSON_TOKENS:
        return False
    # Escapes out (`\\` before `\"`, as a parser pairs them left to right): then each `"`
    # opens or closes a string, and a string is `"[^"]*"`.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"") if b"\\" in body else body
    strings = unescaped.count(b'"') // 2
    if strings > MAX_JSON_TOKENS:
        return True
    outside = re.sub(_STRING, b"", unescaped)  # at most MAX_JSON_TOKENS strings
    return strings + len(outside.translate(None, _NOT_TOKEN_MARKS)) > MAX_JSON_TOKENS


def _opens_too_deep(body: bytes) -> bool:
    """Whether *body*, too large to parse, opens more than MAX_JSON_DEPTH brackets in a row
    (blanks and keys between them aside): so a ``[[[[...`` bomb gets the same reason whatever
    its size. One pass in C; a bracket inside a string counts too, as the body is refused anyway."""
    opens = body.translate(None, _NOT_BRACKETS).replace(b"{", b"[")  # a close, "]" or "}", ends a run
    return b"[" * (MAX_JSON_DEPTH + 1) in opens


def _unknown_key_not_text(obj: dict[str, Any], schema: dict[str, _Field]) -> str | None:
    """The first key not in *schema* whose name, or any string inside whose value, holds a
    lone surrogate (§3: whatever the key, known or not); known keys are their fields' to check.
    The body's token bound (MAX_JSON_TOKENS) bounds the walk."""
    for key, value in obj.items():
        if key in schema:
            continue
        pending: list[Any] = [key, value]
        while pending:
            item = pending.pop()
            if isinstance(item, str):
                if _has_surrogate(item):
                    return key
            elif isinstance(item, dict):
                pending += item.keys()
                pending += item.values()
            elif isinstance(item, list):
                pending += item
    return None


def _parse_json_body(cls: type[Message], body: bytes) -> dict[str, Any]:
    name = cls.TYPE.name
    too_deep = f"{name} body is nested deeper than {MAX_JSON_DEPTH} levels"
    if cls is not FsResult and _too_many_tokens(body):
        if _opens_too_deep(body):
            raise RemoteProtocolError(too_deep)
        raise RemoteProtocolError(f"{name} body holds more than {MAX_JSON_TOKENS} JSON tokens")
    try:
        obj = _JSON_DECODER.decode(body.decode("utf-8"))
    except _NotJson as exc:
        raise RemoteProtocolError(f"{name} body: {exc}") from None
    except RecursionError:
        raise RemoteProtocolError(too_deep) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"{name} body is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"{name} body must be a JSON object, got {type(obj).__name__}")
    # Counting brackets is quick and bounds the depth: only a body with many is walked.
    if body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH and _too_deep(obj):
        raise RemoteProtocolError(too_deep)
    schema = SCHEMA[cls]
    if not obj.keys() <= schema.keys() and (key := _unknown_key_not_text(obj, schema)) is not None:
        raise RemoteProtocolError(f"{name} field {key!r} is not Unicode text (it holds a lone surrogate)")
    fields: dict[str, Any] = {}
    for key, spec in schema.items():
        if key not in obj:
            if spec.required:
                raise RemoteProtocolError(f"{name} lacks the required field {key!r}")
            continue
        value = obj[key]
        if _wrong_type(spec, value):
            raise RemoteProtocolError(f"{name} field {key!r} has the wrong type ({type(value).__name__})")
        if value is not None and (problem := spec.check(value)) is not None:
            raise RemoteProtocolError(f"{name} field {key!r} {problem}")
        fields[key] = value
    if cls is Run and fields.get("pty") is not None:
        pty = fields["pty"]
        fields["pty"] = PtyRequest(
            term=pty.get("term", "xterm"), rows=pty.get("rows", 24), cols=pty.get("cols", 80)
        )
    elif cls is Hello and fields.get("extensions") is not None:
        fields["extensions"] = tuple(fields["extensions"])
    elif cls is Completions:
        fields["items"] = tuple(fields["items"])
    return fields
