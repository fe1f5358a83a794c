"""The rcmd conversation as a state machine. Sans-I/O: bytes in, messages out, bytes out.

One :class:`Connection` per end. It frames, parses and checks every message against the
table below, so the transports (server.py, client.py) only move bytes and run commands::

    conn = Connection(Role.SERVER)
    sock.sendall(conn.send(Hello(encoding="utf-8")))
    conn.receive_data(sock.recv(65536))     # b"" at EOF
    event = conn.next_event()               # a Message, NEED_DATA or CLOSED

Order of a conversation: each side's first message is HELLO. Then, one command at a time:
the client sends RUN (then STDIN/STDIN_END/CANCEL as it likes); the server sends any number
of STDOUT/STDERR and, last, EXIT. ERROR may come from either side at any time and ends it.
"""

from __future__ import annotations

import enum

from .errors import LocalProtocolError, RemoteProtocolError
from .framing import (
    CLOSED,
    DEFAULT_MAX_FRAME_SIZE,
    NEED_DATA,
    LengthPrefixFramer,
    Status,
    frame_header,
)
from .messages import (
    PROTOCOL_VERSION,
    AnyMessage,
    Hello,
    Message,
    MessageType,
    Run,
    decode_message_parts,
    encode_message_parts,
)

__all__ = ["CLOSED", "NEED_DATA", "Connection", "Phase", "Role"]


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class Phase(enum.Enum):
    """Where the conversation is, as seen from one end."""

    HANDSHAKE = "handshake"  # waiting for the peer's HELLO
    AUTHENTICATING = "authenticating"  # HELLOs exchanged, the server's AUTH_OK still to come
    IDLE = "idle"  # no command running; the client may send RUN
    RUNNING = "running"  # a command runs; output flows until its EXIT
    FILES = "files"  # a PUT, GET or FS is being answered, until FILE_DONE, FILE_ERROR or FS_RESULT
    COMPLETING = "completing"  # a COMPLETE is being answered, until its COMPLETIONS
    CLOSED = "closed"  # an ERROR went either way, or the protocol broke


_C, _S = Role.CLIENT, Role.SERVER
_IDLE, _RUNNING, _FILES, _AUTH = Phase.IDLE, Phase.RUNNING, Phase.FILES, Phase.AUTHENTICATING

#: Until the handshake is done, frames may be at most this large: a HELLO is a few hundred
#: bytes, and an unauthenticated peer must not make us buffer more than that.
HANDSHAKE_MAX_FRAME_SIZE = 8 * 1024

#: (who sends it, message type) -> (phase it is valid in, phase after it).
#: HELLO and ERROR are handled apart: HELLO once, first; ERROR any time, last.
TRANSITIONS: dict[tuple[Role, MessageType], tuple[Phase, Phase]] = {
    (_C, MessageType.RUN): (_IDLE, _RUNNING),
    (_C, MessageType.STDIN): (_RUNNING, _RUNNING),
    (_C, MessageType.STDIN_END): (_RUNNING, _RUNNING),
    (_C, MessageType.CANCEL): (_RUNNING, _RUNNING),
    (_C, MessageType.WINDOW_CHANGE): (_RUNNING, _RUNNING),
    (_S, MessageType.STDOUT): (_RUNNING, _RUNNING),
    (_S, MessageType.STDERR): (_RUNNING, _RUNNING),
    (_S, MessageType.EXIT): (_RUNNING, _IDLE),
    (_S, MessageType.AUTH_OK): (_AUTH, _IDLE),
    # SCRAM (docs/PROTOCOL.md 4c): the server's challenge and the client's proof before AUTH_OK.
    (_S, MessageType.AUTH_CHALLENGE): (_AUTH, _AUTH),
    (_C, MessageType.AUTH_PROOF): (_AUTH, _AUTH),
    # Files (docs/PROTOCOL.md 5b): one request at a time, like commands.
    (_C, MessageType.PUT): (_IDLE, _FILES),
    (_C, MessageType.GET): (_IDLE, _FILES),
    (_C, MessageType.FS): (_IDLE, _FILES),
    (_S, MessageType.PUT_READY): (_FILES, _FILES),
    (_C, MessageType.PUT_FROM): (_FILES, _FILES),
    (_S, MessageType.GET_READY): (_FILES, _FILES),
    (_C, MessageType.FILE_DATA): (_FILES, _FILES),
    (_S, MessageType.FILE_DATA): (_FILES, _FILES),
    (_C, MessageType.FILE_END): (_FILES, _FILES),
    (_S, MessageType.FILE_END): (_FILES, _IDLE),  # ends a GET
    (_S, MessageType.FILE_DONE): (_FILES, _IDLE),
    (_S, MessageType.FILE_ERROR): (_FILES, _IDLE),
    (_S, MessageType.FS_RESULT): (_FILES, _IDLE),
    # Completion (docs/PROTOCOL.md 5d): a question and its answer, between commands.
    (_C, MessageType.COMPLETE): (_IDLE, Phase.COMPLETING),
    (_S, MessageType.COMPLETIONS): (Phase.COMPLETING, _IDLE),
}

#: Which file request each message of the FILES phase belongs to: data flows from the client
#: in a PUT and from the server in a GET, never the other way.
_FILE_REQUEST_OF: dict[tuple[Role, MessageType], MessageType] = {
    (_S, MessageType.PUT_READY): MessageType.PUT,
    (_C, MessageType.PUT_FROM): MessageType.PUT,
    (_C, MessageType.FILE_DATA): MessageType.PUT,
    (_C, MessageType.FILE_END): MessageType.PUT,
    (_S, MessageType.FILE_DONE): MessageType.PUT,
    (_S, MessageType.GET_READY): MessageType.GET,
    (_S, MessageType.FILE_DATA): MessageType.GET,
    (_S, MessageType.FILE_END): MessageType.GET,
    (_S, MessageType.FS_RESULT): MessageType.FS,
}
_FILE_REQUESTS = {MessageType.PUT, MessageType.GET, MessageType.FS}

#: Client messages that may cross the command's EXIT on the wire: the client sent them
#: before it learnt the command had ended. A server drops them instead of failing.
_MAY_ARRIVE_LATE = {MessageType.STDIN, MessageType.STDIN_END, MessageType.CANCEL, MessageType.WINDOW_CHANGE}

#: Keepalives: valid whenever a command may run or runs (idle or running), phase unchanged.
KEEPALIVES: dict[MessageType, Role] = {MessageType.PING: _C, MessageType.PONG: _S}
#: Likewise an upload's data and end, sent before the client learnt (FILE_ERROR) that the
#: server had stopped taking it.
_MAY_ARRIVE_LATE |= {MessageType.FILE_DATA, MessageType.FILE_END}

#: The extension (PROTOCOL.md §3) a client message needs the server to have listed in its
#: HELLO; RUN's ``pty`` field needs "pty" too. A client never sends them to a server without it.
EXTENSION_OF: dict[MessageType, str] = {MessageType.WINDOW_CHANGE: "pty", MessageType.PING: "ping"}
EXTENSION_OF |= {MessageType.PUT: "files", MessageType.GET: "files", MessageType.FS: "files"}
EXTENSION_OF[MessageType.COMPLETE] = "complete"


class Connection:
    """One end of an rcmd conversation.

    ``send()`` raises :class:`LocalProtocolError` for a message we may not send now;
    ``next_event()`` raises :class:`RemoteProtocolError` for anything wrong the peer sent
    (the transport should then ``send(Error(str(exc)))`` and close). Once it has raised,
    the connection is ``Phase.CLOSED`` and stays so.
    """

    def __init__(self, our_role: Role, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self.our_role = our_role
        self.their_role = _S if our_role is _C else _C
        self._max_frame_size = max_frame_size
        self._framer = LengthPrefixFramer(min(max_frame_size, HANDSHAKE_MAX_FRAME_SIZE))
        # "no mutate": each mutant of these two lines is equivalent (make mutate). Only the truth of
        # _our_hello is read, so "" acts as None; RUN sets _stdin_open before anything reads it.
        self._our_hello: Hello | None = None  # pragma: no mutate
        self.phase = Phase.HANDSHAKE
        self.their_hello: Hello | None = None
        self._hello_sent = False
        self._error_sent = False
        self._stdin_open = False  # pragma: no mutate (the running command takes STDIN messages)
        self._file_request: MessageType | None = None  # PUT, GET or FS while Phase.FILES
        self._failure: RemoteProtocolError | None = None

    @property
    def max_frame_size(self) -> int:
        """The limit in force now: small until the handshake is done."""
        return self._framer.max_frame_size

    @property
    def auth_required(self) -> bool:
        """The server's HELLO asked for authentication (known once it is sent or received)."""
        server_hello = self._our_hello if self.our_role is _S else self.their_hello
        return bool(server_hello and server_hello.auth)

    def _set_phase(self, phase: Phase) -> None:
        if phase in (_IDLE, _RUNNING) and self.phase in (Phase.HANDSHAKE, Phase.AUTHENTICATING):
            self._framer.max_frame_size = self._max_frame_size  # handshake done
        self.phase = phase

    def _after_hellos(self) -> None:
        """Both HELLOs are known: on to AUTHENTICATING, or straight to IDLE."""
        if self.phase is Phase.HANDSHAKE and self._hello_sent and self.their_hello is not None:
            self._set_phase(Phase.AUTHENTICATING if self.auth_required else _IDLE)

    # ------------------------------------------------------------------------- receiving

    def receive_data(self, data: bytes | memoryview) -> None:
        """Feed bytes read from the peer (copied in: a reused buffer is fine); empty means it
        closed the connection."""
        self._framer.receive_data(data)

    def get_buffer(self, size: int) -> memoryview:
        """Room for *size* bytes read from the peer, written straight into the framer's buffer
        (``sock.recv_into(view)``: one copy fewer than receive_data()); then call
        buffer_updated() with the count. Release the view first (``with``)."""
        return self._framer.get_buffer(size)

    def buffer_updated(self, count: int) -> None:
        """*count* bytes were read into get_buffer()'s view; 0 means the peer closed."""
        self._framer.buffer_updated(count)

    def next_event(self) -> AnyMessage | Status:
        """The next message from the peer, ``NEED_DATA``, or ``CLOSED`` (clean EOF)."""
        if self._failure is not None:
            raise RemoteProtocolError(f"connection already failed: {self._failure}")
        while True:
            try:
                frame = self._framer.next_frame_split()  # type byte and body: one copy
                if isinstance(frame, Status):
                    return frame
                message = decode_message_parts(*frame)
                if self._accept(message):
                    return message
            except RemoteProtocolError as exc:
                self._failure = exc
                self.phase = Phase.CLOSED
                raise

    def _accept(self, message: AnyMessage) -> bool:
        """Check a received message and apply it; False means drop it silently."""
        kind = message.TYPE
        if kind is MessageType.ERROR:
            self.phase = Phase.CLOSED
            return True
        if self.phase is Phase.CLOSED:
            return False  # nothing after an ERROR means anything
        if self.their_hello is None:
            if not isinstance(message, Hello):
                raise RemoteProtocolError(
                    f"expected HELLO first, got {kind.name} (is the peer an rcmd {self.their_role.value}?)"
                )
            if message.protocol != PROTOCOL_VERSION:
                raise RemoteProtocolError(
                    f"peer speaks protocol version {message.protocol}, we speak {PROTOCOL_VERSION}"
                )
            self.their_hello = message
            self._after_hellos()  # a client's RUN may have gone out before this HELLO came
            return True
        if kind is MessageType.HELLO:
            raise RemoteProtocolError("a second HELLO")
        if KEEPALIVES.get(kind) is self.their_role and self.phase in (_IDLE, _RUNNING):
            return True
        rule = TRANSITIONS.get((self.their_role, kind))
        if rule is None:
            raise RemoteProtocolError(f"a {self.their_role.value} may not send {kind.name}")
        before, after = rule
        if self.phase is not before:
            if self.our_role is _S and self.phase is _IDLE and kind in _MAY_ARRIVE_LATE:
                return False
            raise RemoteProtocolError(f"{kind.name} is not allowed while {self.phase.value}")
        self._check_stdin(kind, message, RemoteProtocolError)
        self._check_file_request(self.their_role, kind, RemoteProtocolError)
        self._set_phase(after)
        return True

    # --------------------------------------------------------------------------- sending

    def send(self, message: Message) -> bytes:
        """The framed bytes for *message*, after checking we may send it now.

        Raises LocalProtocolError for a message the conversation does not allow now, and
        TypeError or ValueError for one whose fields break the schema (encode_message_parts:
        e.g. a RUN with a NUL in its command). Either way nothing changes: the connection
        is as it was, and the caller may send something else.
        """
        kind = message.TYPE
        type_byte, body = encode_message_parts(message)  # checked before any state changes
        if kind is MessageType.ERROR:
            if self._error_sent:
                raise LocalProtocolError("an ERROR was sent already")
            self._error_sent = True
            self.phase = Phase.CLOSED
        elif self.phase is Phase.CLOSED:
            raise LocalProtocolError(f"cannot send {kind.name}: the connection is closed")
        elif kind is MessageType.HELLO:
            if self._hello_sent:
                raise LocalProtocolError("HELLO was sent already")
            self._hello_sent = True
            self._our_hello = message  # type: ignore[assignment]
            self._after_hellos()
        elif not self._hello_sent:
            raise LocalProtocolError(f"send HELLO before {kind.name}")
        elif KEEPALIVES.get(kind) is self.our_role:
            if self.phase not in (_IDLE, _RUNNING):
                raise LocalProtocolError(f"cannot send {kind.name} while {self.phase.value}")
            self._require_extension(message)
        else:
            rule = TRANSITIONS.get((self.our_role, kind))
            if rule is None:
                raise LocalProtocolError(f"a {self.our_role.value} may not send {kind.name}")
            before, after = rule
            # A client may send RUN right after its HELLO, before the server's arrives.
            current = _IDLE if self.phase is Phase.HANDSHAKE and kind is MessageType.RUN else self.phase
            if current is not before:
                raise LocalProtocolError(f"cannot send {kind.name} while {self.phase.value}")
            self._require_extension(message)
            self._check_stdin(kind, message, LocalProtocolError)
            self._check_file_request(self.our_role, kind, LocalProtocolError)
            self._set_phase(after)
        return b"".join((frame_header(1 + len(body)), type_byte, body))  # the body copied once

    def _require_extension(self, message: Message) -> None:
        """A client sends an extension's message or field only to a server that listed the
        extension in its HELLO (PROTOCOL.md §3); LocalProtocolError otherwise."""
        if self.our_role is not _C:
            return
        needed = EXTENSION_OF.get(message.TYPE)
        if needed is None and isinstance(message, Run) and message.pty is not None:
            needed = "pty"
        offered = self.their_hello.extensions if self.their_hello is not None else None
        if needed is not None and needed not in (offered or ()):
            raise LocalProtocolError(
                f"cannot send {message.TYPE.name}: the server did not list the {needed!r} extension in its HELLO"
            )

    def _check_stdin(self, kind: MessageType, message: Message, error: type[Exception]) -> None:
        if kind is MessageType.RUN:
            assert isinstance(message, Run)
            self._stdin_open = message.stdin
        elif kind in (MessageType.STDIN, MessageType.STDIN_END):
            if not self._stdin_open:
                raise error(f"{kind.name} without an open stdin (RUN had stdin=false, or it ended)")
            if kind is MessageType.STDIN_END:
                self._stdin_open = False

    def _check_file_request(self, sender: Role, kind: MessageType, error: type[Exception]) -> None:
        if kind in _FILE_REQUESTS:
            self._file_request = kind
            return
        request = _FILE_REQUEST_OF.get((sender, kind))
        if request is not None and request is not self._file_request:
            assert self._file_request is not None
            raise error(f"{kind.name} is not part of a {self._file_request.name}")
