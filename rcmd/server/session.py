"""One connection in prefixed framing: the protocol driver between a client and its commands."""

from __future__ import annotations

import asyncio
import codecs
import enum
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from .. import __version__
from ..auth import (
    NONCE_SIZE,
    PROOF_SIZE,
    SCHEME,
    client_proof,
    decode_hex,
    new_nonce,
    proofs_match,
    server_proof,
    throttle_key,
)
from ..errors import FrameTooLarge, LocalProtocolError, RemoteProtocolError
from ..framing import NEED_DATA, Status
from ..messages import (
    REFUSED,
    AuthOk,
    AuthProof,
    Cancel,
    Complete,
    Error,
    Exit,
    Hello,
    Message,
    Ping,
    Pong,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    WindowChange,
)
from ..process import Child, spawn_in_thread
from ..protocol import Connection, Phase, Role
from ..scram import SCHEME as SCRAM
from .accounts import ScramLogin
from .cd import parse_cd, resolve_cd
from .command import (
    CANNOT_RUN,
    CUT_WAIT,
    KILL_WAIT,
    LINGER,
    OUTPUT_CUT_NOTE,
    STDIN_BACKLOG,
    TERM_GRACE,
    OutputForwarder,
    RunningCommand,
)
from .complete import answer as complete
from .files import FILE_MESSAGES, FileService
from .pty import PtyChild, spawn_pty

if TYPE_CHECKING:
    from .listener import Server

log = logging.getLogger("rcmd.server")

#: How much one read from a client takes.
READ_SIZE = 256 * 1024
#: A connection's read loop lets the others have the event loop after this many messages.
#: Without it a client whose input never runs dry kept it for good: neither read() of
#: buffered input nor send() to a client that keeps up waits, so 8 MiB of PINGs (1.6
#: million, each answered) held every other client for 60 s. With 8, an honest client's
#: `true` took a median 16 ms during such a flood (24 ms with 32), on a loaded machine;
#: 8 STDIN or FILE_DATA frames are still up to 8 MiB a turn.
EVENTS_PER_TURN = 8
#: PINGs a connection may send a second (and at once) before it is read more slowly: each
#: still gets its PONG, in order, only later. A keepalive needs one every few seconds; a MiB
#: of them is 209,715, each answered, and a client that flooded them had the server work for
#: it alone (6-7 us a PING) while the others' commands waited: in the soak, the honest p99
#: was 4.2 ms with 5 floods, 6.0 with 9, 16.8 with 28. HTTP/2 servers bound PING floods in
#: the same spirit (CVE-2019-9512).
PING_RATE = 100.0
PING_BURST = 100
#: While a command does not read its stdin, its client is read on for this many frame limits
#: of input past STDIN_BACKLOG (1 MiB by default, held in memory), so a CANCEL behind input
#: the command has not read is seen at once. Past that the client is not read until the
#: command reads: the protocol has no flow-control window, so what is in flight beyond it
#: (socket buffers hold a few MiB on loopback) waits, the CANCEL with it.
STDIN_READ_AHEAD = 1
#: What this server speaks beyond version 1's messages, announced in its HELLO.
EXTENSIONS = ("pty", "ping", "files", "complete")  # files: rcmd/server/files.py; complete: complete.py


class Allowance:
    """A token bucket: *rate* a second, up to *burst* at once. ``take(now)`` spends one and
    says how long to wait before using it (0.0: at once); a debt is paid by later waits."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.stamp = float(burst), now

    def take(self, now: float) -> float:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate) - 1
        self.stamp = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class Stage(enum.Enum):
    """What a connection is doing, as the listener sees it when it must make room: it closes
    connections in this order, oldest first within each."""

    HANDSHAKE = "handshake"  # accepted, not yet through the TLS and rcmd handshakes
    IDLE = "idle"  # authenticated (or no secret), no command
    BUSY = "busy"  # a command runs or waits for a slot: never closed to make room


class Session(Protocol):
    """What the server needs of a connection, whatever its framing."""

    async def run(self) -> None:
        """Serve the connection until it ends; the caller closes the socket."""

    def shutdown(self, reason: str) -> None:
        """End the connection soon: kill its command and tell the client *reason*."""


class PrefixedSession:
    """One connection in prefixed framing: the full protocol, streaming, one command at a time."""

    def __init__(
        self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        self.server = server
        self.config = config = server.config
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.conn = Connection(Role.SERVER, max_frame_size=config.max_frame_size)
        self._nonce = new_nonce() if config.secret is not None or config.users is not None else None
        self._login: ScramLogin | None = None  # with user accounts (rcmd/server/accounts.py)
        self._ping_allowance = Allowance(PING_RATE, PING_BURST, asyncio.get_running_loop().time())
        self._timer: asyncio.TimerHandle | None = None  # due at or before _deadline
        self._deadline: float | None = None  # loop time: handshake, then idle, deadline
        self._deadline_reason = ""
        self._first_bytes = b""  # to recognise a TLS client on a plaintext server
        self.cwd = config.cwd or os.getcwd()
        self.previous_cwd: str | None = None
        self.command: RunningCommand | None = None
        self.command_task: asyncio.Task[None] | None = None
        self._drain_lock = asyncio.Lock()
        self._peer_gone = False
        self._pongs: list[bytes] = []  # framed, sent in one write at the end of their batch
        self._shutdown_reason: str | None = None
        self._ended = asyncio.Event()  # set by shutdown() and by losing the peer
        self.files = FileService(self)  # PUT, GET and FS requests (rcmd/server/files.py)
        self.last_active = asyncio.get_running_loop().time()  # the listener closes the quietest first
        #: Called once, when the handshake is done: the listener stops counting it as a startup.
        self.on_handshake_done: Callable[[], None] | None = None

    @property
    def stage(self) -> Stage:
        phase = self.conn.phase
        if phase in (Phase.IDLE, Phase.COMPLETING) and self.command is None:
            return Stage.IDLE  # completing: a person at the prompt pressed Tab
        if phase in (Phase.RUNNING, Phase.FILES) or self.command is not None:
            return Stage.BUSY  # a transfer is as busy as a command
        return Stage.HANDSHAKE  # HANDSHAKE, AUTHENTICATING, or CLOSED (on its way out)

    # ---------------------------------------------------------------------------- output

    def _write(self, message: Message) -> None:
        """Frame and queue *message*; protocol order is the order of these calls."""
        if self._peer_gone:
            return
        if self.conn.phase is Phase.CLOSED and not isinstance(message, Error):
            return  # the conversation failed: only its ERROR still goes out
        # One write() of the whole frame. Not writelines(): on Python 3.12.1 it never pauses
        # the protocol, so drain() would not wait for a slow client and memory would grow.
        self.writer.write(self.conn.send(message))

    async def send(self, message: Message) -> None:
        """Queue *message* and wait while the client is behind (backpressure)."""
        self._write(message)
        if not self._peer_gone:
            await self.drain()

    def _ending(self) -> bool:
        """The session is shutting down, or its client is gone: read and run nothing more."""
        return self._shutdown_reason is not None or self._peer_gone

    def _lost_peer(self) -> None:
        if not self._peer_gone:
            self._peer_gone = True
            self._ended.set()
            self._arm_timer(None, "")
            if self.command is not None:
                log.info("%s: client gone, killing its command", self.peer)
                self.command.kill()

    # ----------------------------------------------------------------------------- input

    async def run(self) -> None:
        await self.send(
            Hello(
                software=f"rcmd {__version__}",
                encoding=self.config.encoding,
                cwd=self.cwd,
                auth=(SCRAM if self.config.users is not None else SCHEME)
                if self._nonce is not None
                else None,
                nonce=self._nonce.hex() if self._nonce is not None else None,
                extensions=EXTENSIONS,
                idle_timeout=self.config.idle_timeout,
                max_frame_size=self.config.max_frame_size,
            )
        )
        self._arm_timer(self.config.handshake_timeout, "no handshake within {:g}s")
        try:
            await self._read_loop()
        except RemoteProtocolError as exc:
            reason = str(exc)
            if isinstance(exc, FrameTooLarge) and exc.max_frame_size == self.config.max_frame_size:
                # After the handshake (its limit is 8 KiB): the peer speaks rcmd, and a frame
                # this large is most likely a RUN whose command line carries data, or input
                # from a client that did not read the limit in our HELLO.
                reason = (
                    f"frame of {exc.size} bytes exceeds the maximum of {exc.max_frame_size} bytes "
                    "(the max_frame_size of this server's HELLO: a command line this long is "
                    "refused; send large data as stdin, in frames within it)"
                )
            if self._first_bytes.startswith(b"\x16\x03"):
                reason = "this server does not use TLS (it got a TLS handshake): connect without --tls"
            log.warning("%s: protocol error: %s", self.peer, reason)
            await self._fail(reason)
        except (ConnectionError, OSError) as exc:
            log.info("%s: connection lost: %s", self.peer, exc)
        finally:
            self._arm_timer(None, "")
            self.files.close()  # an upload under way keeps its partial file
            if self.command_task is not None:
                if self._shutdown_reason is None:
                    self._lost_peer()  # we stopped reading: nobody will see its output
                await asyncio.gather(self.command_task, return_exceptions=True)
            if self._shutdown_reason is not None:
                await self._fail(self._shutdown_reason)
            self._arm_timer(None, "")  # a timer left armed would keep this session alive for its length
            self.on_handshake_done = None  # the listener's, which holds what holds this session

    async def _read_loop(self) -> None:
        try:
            await self._read_messages()
        finally:
            if self._pongs and not self._peer_gone:  # PINGs, then the client's EOF or garbage
                self.writer.write(b"".join(self._pongs))
            self._pongs.clear()

    async def _read_messages(self) -> None:
        handled = 0
        while not self._ending():
            data = await self.reader.read(READ_SIZE)
            self.last_active = asyncio.get_running_loop().time()
            if not self._first_bytes:
                self._first_bytes = data[:2]
            self.conn.receive_data(data)
            while True:
                if handled >= EVENTS_PER_TURN:
                    handled = 0
                    await self._send_pongs()
                    await asyncio.sleep(0)  # the other connections' turn
                    if self._ending():
                        return
                event = self.conn.next_event()
                if event is NEED_DATA:
                    await self._send_pongs()
                    break
                handled += 1
                if isinstance(event, Status):  # CLOSED: the client hung up between messages
                    return
                if isinstance(event, Error):
                    log.warning("%s reported an error: %s", self.peer, event.reason)
                    return
                if self._ending():
                    return
                if isinstance(event, Ping):
                    # Answered with the others of this batch in one write (a flood of PINGs
                    # cost a send() each: a fifth of the event loop's time under attack).
                    log.debug("%s: ping", self.peer)
                    self._pongs.append(self.conn.send(Pong()))
                    wait = self._ping_allowance.take(asyncio.get_running_loop().time())
                    if wait:  # a flood: read on more slowly (PING_RATE)
                        await self._send_pongs()
                        if not await self._sleep_unless_ended(wait):
                            return
                else:
                    await self._send_pongs()  # in order with the rest of our messages
                    await self._handle(event)
                if self.conn.phase is Phase.IDLE and self.command is None:
                    if self.on_handshake_done is not None:
                        self.on_handshake_done()
                        self.on_handshake_done = None
                    self._arm_timer(self.config.idle_timeout, "idle for {:g}s")

    async def _handle(self, event: Message) -> None:
        if isinstance(event, FILE_MESSAGES):
            await self.files.handle(event)
            return
        if isinstance(event, Hello):
            if self.config.users is not None:
                assert self._nonce is not None
                self._login = ScramLogin(self, self.config.users, self._nonce)
                await self._login.hello(event)
            elif self.conn.auth_required:
                await self._authenticate(event)
            return
        if isinstance(event, AuthProof):
            await self._logged_in(event)
            return
        if isinstance(event, Complete):  # Tab at the prompt (rcmd/server/complete.py)
            await self.send(await complete(event, self.cwd, allowed=self._not_allowed() is None))
            return
        if isinstance(event, Run):
            reason = event.refusal() or _unencodable(event) or self._not_allowed()
            if reason is not None:
                await self._refuse(reason)
                return
            target = parse_cd(event.command)
            if target is not None:
                await self._change_directory(target)
                return
            # Spawned here, not in the task, so STDIN right behind the RUN finds the process.
            self._arm_timer(None, "")
            command = await self._spawn(event)
            if command is not None:
                self.command = command
                self.command_task = asyncio.create_task(self._supervise(event, command))
        elif isinstance(event, (Stdin, StdinEnd)):
            await self._write_stdin(event)
        elif isinstance(event, WindowChange):
            process = self.command.process if self.command is not None else None
            if isinstance(process, PtyChild):  # a command without a terminal has no size
                process.resize(event.rows, event.cols)
        elif isinstance(event, Cancel) and self.command is not None:
            log.info("%s: cancel", self.peer)
            self.command.cancelled = True
            self.command.terminate()  # if the shell has exited already, kills what it left

    async def _authenticate(self, hello: Hello) -> None:
        """Check the client's proof; prove ourselves in AUTH_OK, or fail slowly.

        No proof is checked while the client's address is locked by an earlier failure
        (rcmd.auth.FailureThrottle): parallel connections from one address take turns, so
        they guess no faster than one. The handshake deadline still runs while it waits.
        """
        assert self._nonce is not None
        assert self.config.secret is not None
        throttle = self.server.throttle
        loop = asyncio.get_running_loop()
        address = throttle_key(self.peer.rsplit(":", 1)[0])
        while (wait := throttle.wait(address, loop.time())) > 0:
            if not await self._sleep_unless_ended(wait):
                return
        # From here to failed() nothing awaits: the check and its record are one step.
        client_nonce = decode_hex(hello.nonce, NONCE_SIZE)
        mac = decode_hex(hello.mac, PROOF_SIZE)
        if (
            client_nonce is None
            or mac is None
            or not proofs_match(client_proof(self.config.secret, self._nonce, client_nonce), mac)
        ):
            delay = throttle.failed(address, loop.time())
            log.warning("%s: authentication failed (answering in %.2fs)", self.peer, delay)
            self._arm_timer(None, "")
            await self._sleep_unless_ended(delay)  # repeated failures from one address get slower
            await self._fail("authentication failed")
            return
        log.info("%s: authenticated", self.peer)
        await self.send(AuthOk(server_proof(self.config.secret, self._nonce, client_nonce).hex()))

    async def _sleep_unless_ended(self, seconds: float) -> bool:
        """Sleep *seconds*; False at once if the session ends first (shutdown, lost peer)."""
        try:
            await asyncio.wait_for(self._ended.wait(), seconds)
        except asyncio.TimeoutError:
            return True
        return False

    async def _logged_in(self, proof: AuthProof) -> None:
        """A SCRAM proof: on success the session runs as that user, in their home."""
        if self._login is None:
            raise RemoteProtocolError("AUTH_PROOF without a login (this server uses hmac-sha256)")
        account = await self._login.proof(proof)
        if account is not None:
            self.files.account = account
            # A transfer-only user sees paths inside the jail only (EXIT's cwd included).
            self.cwd = "/" if account.transfer_only else account.home

    def _not_allowed(self) -> str | None:
        """Why this connection's user may not run commands, or None."""
        account = self.files.account
        if account is not None and account.transfer_only:
            return f"user {account.name} may only transfer files"
        return None

    def _arm_timer(self, seconds: float | None, reason: str) -> None:
        """(Re)start the one deadline a session has: handshake, idle, or a transfer's. None or
        0: none.

        Called after every message, it moves a deadline more than it sets a timer: a timer
        already due no later stays, and when it fires before the deadline it is set again for
        what is left. (A cancel and a call_later a message were a fifth of the server's time
        in a flood of PINGs.) A session that is ending arms nothing: the handle would keep it
        (and its buffers) alive for the whole timeout after its client has gone.
        """
        loop = asyncio.get_running_loop()
        self.last_active = now = loop.time()
        if not seconds or self._ending():
            self._deadline = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        self._deadline = deadline = now + seconds
        self._deadline_reason = reason.format(seconds)
        if self._timer is None or self._timer.when() > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_at(deadline, self._expire)

    def _expire(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < deadline:  # moved since the timer was set
            self._timer = loop.call_at(deadline, self._expire)
            return
        reason = self._deadline_reason
        log.info("%s: %s, closing", self.peer, reason)
        self.shutdown(reason)

    async def _write_stdin(self, event: Stdin | StdinEnd) -> None:
        """Pass stdin on through the command's queue; the read loop goes on reading (a
        CANCEL or a hang-up must be seen whatever the command does) until the command is
        STDIN_BACKLOG behind and a frame limit more is held (STDIN_READ_AHEAD), then waits
        until it is back under STDIN_BACKLOG."""
        command, task = self.command, self.command_task
        if command is None or task is None or command.stdin is None:
            return  # the command ended, or takes no stdin: late input goes nowhere
        feeder = command.stdin
        feeder.put(event.data if isinstance(event, Stdin) else None)
        if feeder.queued > STDIN_BACKLOG + self.config.max_frame_size * STDIN_READ_AHEAD:
            # Nobody reads the client meanwhile: its hang-up is seen by the protocol itself.
            hung_up = self._hung_up()
            room = asyncio.ensure_future(feeder.room())
            ended = asyncio.ensure_future(self._ended.wait())
            gone = asyncio.ensure_future(hung_up.wait())
            await asyncio.wait({room, ended, task, gone}, return_when=asyncio.FIRST_COMPLETED)
            room.cancel()
            ended.cancel()
            gone.cancel()
            if hung_up.is_set() and not room.done() and not task.done():
                self._lost_peer()  # its command would run on for nobody until it ended

    def _hung_up(self) -> asyncio.Event:
        """Set once the client's input has ended (FIN, or the connection lost), read or not
        (listener.ReaderProtocol); an event never set where the protocol does not say."""
        protocol = self.writer.transport.get_protocol()
        return getattr(protocol, "hung_up", None) or asyncio.Event()

    async def _fail(self, reason: str) -> None:
        """Tell the client why; after this nothing more is sent and run() closes."""
        try:
            await self.send(Error(reason))
        except LocalProtocolError:
            pass  # an ERROR was sent already
        self._lost_peer()

    def shutdown(self, reason: str) -> None:
        if self._shutdown_reason is not None:
            return  # the first reason is the one the client is told
        self._shutdown_reason = reason
        self._ended.set()
        self._arm_timer(None, "")
        if self.command is not None:
            self.command.cancelled = True
            self.command.terminate()
        # Stop reading and let the read loop see EOF: it then waits for the command's
        # EXIT, sends the reason, and closes, as for any other end of a conversation.
        self.writer.transport.pause_reading()  # type: ignore[attr-defined]  # a socket transport reads
        self.reader.feed_eof()

    # -------------------------------------------------------------------------- commands

    async def _refuse(self, reason: str) -> None:
        """A well-formed RUN we cannot run as given: say why, and the connection goes on."""
        log.info("%s: refused: %s", self.peer, reason)
        await self.send(Stderr(f"rcmd: refused: {reason}\n".encode(self.config.encoding, "replace")))
        await self.send(Exit(REFUSED, cwd=self.cwd))

    async def _change_directory(self, target: str) -> None:
        """The ``cd`` builtin: each command is its own process, so the session keeps cwd."""
        try:
            new_cwd = resolve_cd(target, self.cwd, self.previous_cwd)
        except OSError as exc:
            name = target or "~"
            await self.send(Stderr(f"cd: {name}: {exc.strerror}\n".encode(self.config.encoding, "replace")))
            await self.send(Exit(1, cwd=self.cwd))
            return
        if target == "-":
            await self.send(Stdout(os.fsencode(new_cwd) + b"\n"))  # its bytes, as the shell prints them
        self.previous_cwd, self.cwd = self.cwd, new_cwd
        log.info("%s: cd %s", self.peer, new_cwd)
        await self.send(Exit(0, cwd=self.cwd))

    async def _spawn(self, run: Run) -> RunningCommand | None:
        cwd = os.path.join(self.cwd, os.path.expanduser(run.cwd)) if run.cwd else self.cwd
        env = {**os.environ, **run.env} if run.env else None  # None: ours, as it is
        shown = (
            run.command
            if len(run.command) <= 500
            else f"{run.command[:500]}... ({len(run.command)} characters)"
        )
        log.info("%s: run %r", self.peer, shown)  # not a whole 1 MiB line in the log
        slots = self.server.command_slots
        if not await self._acquire_slot(slots):  # at most --max-commands at once, server-wide
            return None
        try:
            if run.pty is not None:  # on the loop: its preexec_fn makes Popen fork, which a thread must not
                process: Child = spawn_pty(
                    run.command,
                    shell=self.config.shell,
                    cwd=cwd,
                    env=env,
                    term=run.pty.term,
                    rows=run.pty.rows,
                    cols=run.pty.cols,
                    stdin=run.stdin,
                )
            else:
                process = await spawn_in_thread(
                    run.command, shell=self.config.shell, cwd=cwd, env=env, stdin=run.stdin
                )
        except OSError as exc:
            slots.release()
            if isinstance(exc, (FileNotFoundError, PermissionError)) and exc.filename == self.config.shell:
                # the shell itself is missing, not the directory
                reason = f"rcmd: cannot run the shell {self.config.shell}: {exc.strerror or exc}\n"
            else:
                reason = f"rcmd: cannot run command in {cwd}: {exc.strerror or exc}\n"
            await self.send(Stderr(reason.encode(self.config.encoding, "replace")))
            await self.send(Exit(CANNOT_RUN, cwd=self.cwd))
            return None
        except BaseException:
            slots.release()  # a slot must never leak: a leaked one is gone for good
            raise
        return RunningCommand(process)

    async def _acquire_slot(self, slots: asyncio.Semaphore) -> bool:
        """Wait for a command slot, unless the session ends first (shutdown, idle, lost peer)."""
        if not slots.locked():
            await slots.acquire()  # one is free: taken at once, without a task or a wait
        else:
            # Nobody reads the client meanwhile: its hang-up is seen by the protocol itself.
            hung_up = self._hung_up()
            acquire = asyncio.ensure_future(slots.acquire())
            ended = asyncio.ensure_future(self._ended.wait())
            gone = asyncio.ensure_future(hung_up.wait())
            await asyncio.wait({acquire, ended, gone}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
            gone.cancel()
            if not acquire.done():
                acquire.cancel()
                if hung_up.is_set():
                    log.info("%s: client gone while its command waited for a slot: not run", self.peer)
                    self._lost_peer()
                return False
            if hung_up.is_set():
                slots.release()
                self._lost_peer()
                return False
        if self._shutdown_reason is not None or self._peer_gone:
            slots.release()
            return False
        return True

    async def _supervise(self, run: Run, command: RunningCommand) -> None:
        """Stream the command's output, enforce its timeout, kill what it leaves, send EXIT.

        The command ends when its shell exits. Every wait here is bounded once the command
        is stopping (cancel, timeout, lost client, shutdown), and output still held open
        after the shell exits is drained for LINGER, its holders killed, then cut.
        """
        process = command.process
        timeout = run.timeout if run.timeout is not None else (self.config.command_timeout or None)
        output = OutputForwarder(self, process)
        cut = False
        try:
            exited = process.wait()
            await asyncio.wait(
                {exited, command.stopping}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not exited.done() and not command.stopping.done():
                log.info("%s: timed out after %ss: %r", self.peer, timeout, run.command)
                command.timed_out = True
                command.terminate()
            if not await _within(exited, TERM_GRACE + KILL_WAIT):
                log.warning("%s: pid %d outlived SIGKILL; replying without it", self.peer, process.pid)
            if command.stopping.done():
                command.kill()  # the shell is gone: what it left goes now, not after LINGER
            # Whatever the shell left running may hold the pipes open: give it LINGER to
            # finish, then kill it; what still holds them then is cut off.
            if not await _within(output.done, LINGER):
                log.info("%s: killing what %r left running", self.peer, run.command)
                command.kill()
                if not await _within(output.done, CUT_WAIT):
                    log.warning(
                        "%s: output of %r cut: held open by processes not found", self.peer, run.command
                    )
                    cut = True
        finally:
            output.close()
            command.finished()
            self.server.command_slots.release()
            self.command = None
        if command.killing is not None:  # its processes found off the loop: EXIT follows their kill
            await _within(command.killing, KILL_WAIT)
        code = process.returncode
        if code is None:
            code = -signal.SIGKILL  # sent, not yet taken effect: the best we can report
        log.info("%s: exit %s: %r", self.peer, code, run.command)
        if self._shutdown_reason is None:
            self._arm_timer(self.config.idle_timeout, "idle for {:g}s")
        if cut:
            self._write(Stderr(OUTPUT_CUT_NOTE))
        await self.send(
            Exit(
                code,
                signal=-code if code < 0 else None,
                timed_out=command.timed_out,
                cancelled=command.cancelled,
                cwd=self.cwd,
            )
        )

    async def _send_pongs(self) -> None:
        if self._pongs:
            pongs = b"".join(self._pongs)
            self._pongs.clear()
            if not self._peer_gone:
                self.writer.write(pongs)
                await self.drain()

    async def drain(self) -> None:
        """Wait while the client is behind; a lost client is noted, not raised."""
        try:
            async with self._drain_lock:
                await self.writer.drain()
        except (ConnectionError, OSError):
            self._lost_peer()


#: The file system encoding is UTF-8 (as it is in Python's UTF-8 mode, and in any UTF-8 locale).
_FS_ENCODES_ALL_TEXT = codecs.lookup(sys.getfilesystemencoding()).name == "utf-8"


def _unencodable(run: Run) -> str | None:
    """Which part of *run* the file system encoding cannot carry (argv, environment and
    paths are bytes: os.fsencode), or None. Only a server whose locale is not UTF-8 meets
    this, e.g. "中文" under LC_ALL=C with Python's UTF-8 mode off."""
    if _FS_ENCODES_ALL_TEXT:
        return None  # UTF-8 encodes all text, and Run.refusal() has refused what is not
    parts = {"'command'": [run.command], "'cwd'": [run.cwd or ""], "env": [*run.env, *run.env.values()]}
    for name, values in parts.items():
        try:
            for value in values:
                os.fsencode(value)
        except UnicodeEncodeError:
            encoding = sys.getfilesystemencoding()
            return f"{name} cannot be encoded in the server's file system encoding ({encoding})"
    return None


async def _within(future: asyncio.Future[Any], seconds: float | None) -> bool:
    """Wait up to *seconds* (None: for ever) for *future*; True if it is done. On timeout
    it is left running."""
    if not future.done():
        if seconds is None:
            await future
        else:
            await asyncio.wait({future}, timeout=seconds)
    return future.done()
