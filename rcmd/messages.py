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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import RemoteProtocolError

#: Version of the message set; both HELLOs carry it and a mismatch is refused.
PROTOCOL_VERSION = 1


class MessageType(enum.IntEnum):
    """The type byte that starts every payload."""

    HELLO = 0x01  # both directions, first message each way
    RUN = 0x02  # client -> server
    STDIN = 0x03  # client -> server
    STDIN_END = 0x04  # client -> server
    CANCEL = 0x05  # client -> server
    AUTH_OK = 0x06  # server -> client, after a HELLO that asked for authentication
    STDOUT = 0x10  # server -> client
    STDERR = 0x11  # server -> client
    EXIT = 0x12  # server -> client
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
    all hex.
    """

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    protocol: int = PROTOCOL_VERSION
    software: str = ""
    encoding: str | None = None
    cwd: str | None = None
    auth: str | None = None
    nonce: str | None = None
    mac: str | None = None


@dataclass(frozen=True, slots=True)
class Run(Message):
    """Run one command line in the server's shell.

    *cwd* overrides the connection's working directory for this command only; *env* is
    added to the server's environment; *timeout* (seconds) kills the command's process
    group when it runs out; *stdin* says whether STDIN messages will follow (otherwise
    the command's stdin is empty, so a command that reads it does not hang).
    """

    TYPE: ClassVar[MessageType] = MessageType.RUN
    command: str
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    stdin: bool = False


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


AnyMessage = Hello | Run | Exit | AuthOk | Error | Stdin | Stdout | Stderr | StdinEnd | Cancel
OutputChunk = Stdout | Stderr

_DATA = (Stdin, Stdout, Stderr)
_EMPTY = (StdinEnd, Cancel)
_BY_TYPE: dict[int, type[Message]] = {
    cls.TYPE: cls for cls in (Hello, Run, Exit, AuthOk, Error, Stdin, Stdout, Stderr, StdinEnd, Cancel)
}

# JSON body schema: field -> (accepted types, required). bool is checked before int, since
# in Python a bool is an int and ``"returncode": true`` must not pass for 1.
_OPTIONAL_STR = (str, type(None))
_SCHEMA: dict[type[Message], dict[str, tuple[tuple[type, ...], bool]]] = {
    Hello: {
        "protocol": ((int,), True),
        "software": ((str,), False),
        "encoding": (_OPTIONAL_STR, False),
        "cwd": (_OPTIONAL_STR, False),
        "auth": (_OPTIONAL_STR, False),
        "nonce": (_OPTIONAL_STR, False),
        "mac": (_OPTIONAL_STR, False),
    },
    Run: {
        "command": ((str,), True),
        "cwd": (_OPTIONAL_STR, False),
        "env": ((dict,), False),
        "timeout": ((int, float, type(None)), False),
        "stdin": ((bool,), False),
    },
    Exit: {
        "returncode": ((int,), True),
        "signal": ((int, type(None)), False),
        "timed_out": ((bool,), False),
        "cancelled": ((bool,), False),
        "cwd": (_OPTIONAL_STR, False),
    },
    AuthOk: {"mac": ((str,), True)},
    Error: {"reason": ((str,), True)},
}


def encode_message(message: Message) -> bytes:
    """The payload for *message* (to be framed): type byte plus body."""
    kind, body = encode_message_parts(message)
    return kind + body


def encode_message_parts(message: Message) -> tuple[bytes, bytes]:
    """The payload for *message* in two parts, type byte and body, so that a large body
    (the data of STDOUT, STDERR, STDIN) is passed on as it is, never copied here."""
    kind = bytes((message.TYPE,))
    if isinstance(message, _DATA):
        return kind, message.data
    if isinstance(message, _EMPTY):
        return kind, b""
    # Optional fields that are None are left out: the receiver reads absent as None.
    body = {name: value for name in _SCHEMA[type(message)] if (value := getattr(message, name)) is not None}
    if isinstance(message, Run):
        body["env"] = dict(message.env)
    return kind, json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_message(payload: bytes) -> AnyMessage:
    """Parse one payload. Raises :class:`RemoteProtocolError` saying what is wrong with it."""
    return decode_message_parts(payload[0] if payload else None, payload[1:])


def decode_message_parts(kind: int | None, body: bytes) -> AnyMessage:
    """decode_message() for a payload already split into its type byte (None: the payload
    was empty) and its body, which a data message keeps as it is."""
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


def _parse_json_body(cls: type[Message], body: bytes) -> dict[str, Any]:
    name = cls.TYPE.name
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise RemoteProtocolError(f"{name} body is not UTF-8 JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise RemoteProtocolError(f"{name} body must be a JSON object, got {type(obj).__name__}")
    fields: dict[str, Any] = {}
    for key, (types, required) in _SCHEMA[cls].items():
        if key not in obj:
            if required:
                raise RemoteProtocolError(f"{name} lacks the required field {key!r}")
            continue
        value = obj[key]
        ok = False if isinstance(value, bool) and bool not in types else isinstance(value, types)
        if not ok:
            raise RemoteProtocolError(f"{name} field {key!r} has the wrong type ({type(value).__name__})")
        fields[key] = value
    if cls is Run:
        env = fields.get("env", {})
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise RemoteProtocolError("RUN field 'env' must map strings to strings")
        timeout = fields.get("timeout")
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise RemoteProtocolError("RUN field 'timeout' must be a positive number of seconds")
    return fields
