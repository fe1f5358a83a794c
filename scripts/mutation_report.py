"""Summarise a `mutmut run`: killed/total per module, with the equivalent mutants set apart.

An equivalent mutant changes the code but not what it does (``False`` -> ``None`` where only
the truth of the value is read), so no test can kill it. Those known here are listed in
EQUIVALENT with the text of the change and the reason; the score leaves them out. A listed
one counts only while mutants/ shows that text in it and not in the original function
(mutmut numbers mutants within a function: an edit there renumbers them, and a stale number
would excuse another mutant); one that no longer matches, or is now killed, is reported, and
every other survivor is listed, for a test to kill it.

Usage (after `mutmut run`; make mutate does both)::

    python scripts/mutation_report.py [--fail-under PERCENT] [--module PREFIX ...]
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

EQUIVALENT: dict[str, tuple[str, str]] = {
    # name: (text only that mutant has, why no test can tell it apart). The text is checked
    # against the mutant's code in mutants/: mutmut numbers mutants within a function, so an
    # edit there renumbers them, and a number alone would then excuse some other mutant.
    #
    # make mutate, round of 1 December (mut2): rcmd.framing and rcmd.auth.
    "rcmd.framing.xǁLengthPrefixFramerǁ__init____mutmut_18": (
        "self._reading_into = None",
        "read only as a truth value",
    ),
    "rcmd.framing.xǁLengthPrefixFramerǁ_make_room__mutmut_2": (
        "if self._end + size < len(self._buffer):",
        "exactly size free: the unread bytes move to the front, same buffer",
    ),
    "rcmd.framing.xǁLengthPrefixFramerǁ_take__mutmut_12": (
        "self._start = self._end = 1",
        "empty: a read goes at 1 or moves it to 0: same bytes, same sizes",
    ),
    "rcmd.auth.x_client_proof__mutmut_10": ('"SHA256"', "hash names are looked up case-insensitively"),
    "rcmd.auth.x_server_proof__mutmut_10": ('"SHA256"', "hash names are looked up case-insensitively"),
    # rcmd.messages. _too_many_tokens(): its exact count is never more than its first count of
    # every mark (a string's two quotes count once, escapes and marks inside strings not at
    # all), so checking exactly a body of just MAX_JSON_TOKENS marks also says no; and what
    # replaces escapes and strings only has to hold no quote and no mark.
    "rcmd.messages.x__too_many_tokens__mutmut_1": (
        ")) < MAX_JSON_TOKENS:",
        "exactly counted: no more than the marks",
    ),
    "rcmd.messages.x__too_many_tokens__mutmut_5": (
        "in body) or True",
        "no backslash: nothing to replace",
    ),
    "rcmd.messages.x__too_many_tokens__mutmut_15": (
        'b"XXXX").replace',
        "no quote or mark, as b'' holds none",
    ),
    "rcmd.messages.x__too_many_tokens__mutmut_17": (
        'b"XXXX") if b',
        "no quote or mark, as b'' holds none",
    ),
    "rcmd.messages.x__too_many_tokens__mutmut_34": (
        're.sub(_STRING, b"XXXX"',
        "no quote or mark, as b'' holds none",
    ),
    # A separator holds no "=", NUL or lone surrogate: the same verdict (the loop names the culprit).
    "rcmd.messages.x__run_refusal__mutmut_14": ('"XXXX".join(env)', "the separator adds no problem"),
    "rcmd.messages.x__run_refusal__mutmut_16": ('"XXXX".join(env.values())', "the separator adds no problem"),
    # Keys exactly the schema's: the walk for unknown keys finds none, as not walking does.
    "rcmd.messages.x__parse_json_body__mutmut_32": (
        "obj.keys() < schema.keys()",
        "walks a body with no unknown key",
    ),
    #
    # A flag set to None instead of False: it is only ever read as a truth value.
    "rcmd.framing.xǁLengthPrefixFramerǁ__init____mutmut_15": (
        "self._eof = None",
        "read only as a truth value",
    ),
    "rcmd.framing.xǁNaiveFramerǁ__init____mutmut_8": ("self._eof = None", "read only as a truth value"),
    "rcmd.protocol.xǁConnectionǁ__init____mutmut_15": (
        "self._hello_sent = None",
        "read only as a truth value",
    ),
    "rcmd.protocol.xǁConnectionǁ__init____mutmut_17": (
        "self._error_sent = None",
        "read only as a truth value",
    ),
    "rcmd.protocol.xǁConnectionǁ_check_stdin__mutmut_7": (
        "self._stdin_open = None",
        "read only as a truth value",
    ),
    "rcmd.auth.x_throttle_key__mutmut_15": ("strict=None", "ipaddress reads it as a truth value"),
    # RUN's pty: the defaults _pty_problem() checks a missing term or size against are not
    # the ones the message gets (_parse_json_body() sets those): any printable name of 1 to
    # 64 characters, any size of 0 to 65535, passes the check alike.
    "rcmd.messages.x__pty_problem__mutmut_8": (
        'value.get("term", "XXxtermXX")',
        "passes the check as xterm does",
    ),
    "rcmd.messages.x__pty_problem__mutmut_9": (
        'value.get("term", "XTERM")',
        "passes the check as xterm does",
    ),
    "rcmd.messages.x__pty_problem__mutmut_27": ("value.get(key, 1)", "passes the check as 0 does"),
    # Read only in phase FILES, which only a PUT, GET or FS (which set it) leads to.
    "rcmd.protocol.xǁConnectionǁ__init____mutmut_19": (
        '_file_request: MessageType | None = ""',
        "set by the request before it is read",
    ),
    # make mutate-rest. The reason of an AUTH_PROOF to a server without accounts: the protocol
    # refuses that AUTH_PROOF first ("not allowed while idle": a server without a secret is idle
    # after the HELLOs, and one with a secret is idle or closed once it has checked the HELLO).
    "rcmd.server.session.xǁPrefixedSessionǁ_logged_in__mutmut_2": (
        "RemoteProtocolError(None)",
        "unreachable",
    ),
    "rcmd.server.session.xǁPrefixedSessionǁ_logged_in__mutmut_3": ('"XXAUTH_PROOF without', "unreachable"),
    "rcmd.server.session.xǁPrefixedSessionǁ_logged_in__mutmut_4": ('"auth_proof without', "unreachable"),
    "rcmd.server.session.xǁPrefixedSessionǁ_logged_in__mutmut_5": (
        '"AUTH_PROOF WITHOUT A LOGIN',
        "unreachable",
    ),
    # Slices and splits: [1:0] is as empty as [0:0], and the first piece of a split is the
    # same however many splits follow.
    "rcmd.framing.xǁLengthPrefixFramerǁnext_frame_split__mutmut_7": (
        "self._take(1, 0)",
        "[1:0] is empty like [0:0]",
    ),
    "rcmd.auth.x_throttle_key__mutmut_6": (
        'host.split("%", )[0]',
        "split without a limit: the same first piece",
    ),
    "rcmd.auth.x_throttle_key__mutmut_9": ('host.split("%", 2)[0]', "split twice: the same first piece"),
    # Codec names are looked up case-insensitively, and final=False is decode()'s default.
    "rcmd.decoding.x_guess_encoding__mutmut_4": ("decode(sample, )", "without final=False: the default"),
    "rcmd.decoding.x_guess_encoding__mutmut_7": ('getincrementaldecoder("UTF-8")', "the same codec as utf-8"),
    "rcmd.messages.x_encode_message_parts__mutmut_52": ('.encode("UTF-8")', "the same codec as utf-8"),
    "rcmd.messages.x__parse_json_body__mutmut_13": ('body.decode("UTF-8")', "the same codec as utf-8"),
    "rcmd.messages.x__has_surrogate__mutmut_4": ('value.encode("UTF-8")', "the same codec as utf-8"),
    "rcmd.auth.x_load_secret__mutmut_29": ('.encode("UTF-8")', "the same codec as utf-8"),
    # The bracket count only picks which bodies _too_deep() walks. It never undercounts (every
    # container has a bracket; strings can only add more), and 33 levels take 33 brackets, so
    # a body with 32 or fewer is never too deep: walking it too changes only the time taken.
    "rcmd.messages.x__parse_json_body__mutmut_26": (
        ">= MAX_JSON_DEPTH",
        "walks bodies of 32 brackets too: slower",
    ),
    # The failure count is capped at 66 instead of 65: delay() caps the exponent at 64 anyway,
    # and nothing else reads the count.
    "rcmd.auth.xǁFailureThrottleǁfailed__mutmut_19": (
        "self.MAX_EXPONENT + 2",
        "delay() caps the exponent at 64",
    ),
    # rcmd.server.command. asyncio fills in a write-buffer limit left out: high is 4 * low,
    # low is high // 4, the very values given.
    "rcmd.server.command.xǁOutputForwarderǁ__init____mutmut_4": (
        "high=None, low=",
        "asyncio's high: 4 * low",
    ),
    "rcmd.server.command.xǁOutputForwarderǁ__init____mutmut_5": ("low=None)", "asyncio's low: high // 4"),
    "rcmd.server.command.xǁOutputForwarderǁ__init____mutmut_6": (
        "set_write_buffer_limits(low=",
        "asyncio's high: 4 * low",
    ),
    "rcmd.server.command.xǁOutputForwarderǁ__init____mutmut_7": (
        "set_write_buffer_limits(high=4 * OUTPUT_CHUNK_SIZE, )",
        "asyncio's low: high // 4",
    ),
    "rcmd.server.command.xǁOutputForwarderǁ_on_readable__mutmut_8": (
        "data = None  # a pty",
        "read only as a truth value",
    ),
    # Set as the command ends, and never read after: close() and finished() run once.
    "rcmd.server.command.xǁOutputForwarderǁclose__mutmut_2": ('self._resume = ""', "not read after close()"),
    "rcmd.server.command.xǁStdinFeederǁclose__mutmut_2": ('self._task = ""', "not read after close()"),
    # EXIT's timed_out and cancelled are optional, false when left out (docs/PROTOCOL.md); None
    # leaves them out.
    "rcmd.server.command.xǁRunningCommandǁ__init____mutmut_2": (
        "self.timed_out = None",
        "EXIT reads it as false",
    ),
    "rcmd.server.command.xǁRunningCommandǁ__init____mutmut_4": (
        "self.cancelled = None",
        "EXIT reads it as false",
    ),
    # A feeder for a command without stdin takes nothing: put() returns at once.
    "rcmd.server.command.xǁRunningCommandǁ__init____mutmut_9": (
        "(process.stdin is not None) or True",
        "put() takes nothing without a stdin",
    ),
    # After a drop no input is queued again (the command's stdin is closed, or the command is
    # over), and queued is compared only with STDIN_BACKLOG plus a frame limit: 1 is 0 there.
    "rcmd.server.command.xǁStdinFeederǁ_drop__mutmut_2": ("self.queued = 1", "compared only with a limit"),
    # Whether the room is cleared at exactly STDIN_BACKLOG: the session waits for room only past
    # STDIN_BACKLOG plus a frame limit, when both have cleared it, and nothing else reads it.
    "rcmd.server.command.xǁStdinFeederǁput__mutmut_8": (
        "if self.queued >= STDIN_BACKLOG:",
        "only waited for past the limit",
    ),
    # rcmd.process. Linux reads PR_SET_CHILD_SUBREAPER's arg2 as a truth value and no other
    # argument (kernel/sys.c: is_child_subreaper = !!arg2), and errno is never read here.
    "rcmd.process.x__become_subreaper__mutmut_9": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, None, 0, 0)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_10": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, None, 0)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_11": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, None)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_14": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0) == 0",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_15": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0) == 0",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_16": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, ) == 0",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_17": (
        "prctl(PR_SET_CHILD_SUBREAPER, 2, 0, 0, 0)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_18": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 1, 0, 0)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_19": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 1, 0)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_20": (
        "prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 1)",
        "prctl reads only arg2, as a truth value",
    ),
    "rcmd.process.x__become_subreaper__mutmut_2": ("use_errno=None", "errno is never read"),
    "rcmd.process.x__become_subreaper__mutmut_4": ("CDLL(None, )", "errno is never read"),
    "rcmd.process.x__become_subreaper__mutmut_5": ("use_errno=False", "errno is never read"),
    "rcmd.process.xǁChildǁread__mutmut_7": ("writable=None", "read only as a truth value"),
    # A new tracker's fields that _ensure_id() sets before anything reads them (it runs in
    # start() and started(), and a cookie, a command's cgroup or a kill exist only after
    # started()), or read only as a truth value, or only along with another set with them.
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_1": (
        "self.server_id = None",
        "set by _ensure_id() before it is read",
    ),
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_2": (
        'self.server_id = "XXXX"',
        "set by _ensure_id() before it is read",
    ),
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_3": (
        "self._owner_pid = None",
        "only compared with a pid: as 0, never equal",
    ),
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_9": (
        "self.subreaper = None",
        "read only as a truth value",
    ),
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_13": (
        "self._reap_deferred = None",
        "read only as a truth value",
    ),
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_17": (
        'self._sweep_loop: asyncio.AbstractEventLoop | None = ""',
        "read only when a sweep is due, which sets it",
    ),
    "rcmd.process.xǁProcessTrackerǁ__init____mutmut_20": (
        'self.cgroups: CommandCgroups | None = ""',
        "set by _ensure_id() before it is read",
    ),
    # Its callers catch the OSError and drop it: the message is never shown.
    "rcmd.process.xǁProcessTrackerǁ_children__mutmut_25": (
        "raise OSError(None)",
        "the message is never read",
    ),
    "rcmd.process.xǁProcessTrackerǁ_children__mutmut_26": (
        'OSError("XXtoo many children to listXX")',
        "the message is never read",
    ),
    "rcmd.process.xǁProcessTrackerǁ_children__mutmut_27": (
        'OSError("TOO MANY CHILDREN TO LIST")',
        "the message is never read",
    ),
    # add_signal_handler() raises NotImplementedError only on Windows; this module is POSIX only.
    "rcmd.process.xǁProcessTrackerǁstart__mutmut_19": (
        "suppress(RuntimeError, ValueError)",
        "NotImplementedError: Windows only",
    ),
    # The watchdog's read of its pipe: a chunk size (the same bytes in the end), and os.read()
    # retries on EINTR itself (PEP 475), so InterruptedError is never raised.
    "rcmd.process.x_watchdog_main__mutmut_16": ("os.read(0, 4097)", "a chunk size: the same bytes"),
    "rcmd.process.x_watchdog_main__mutmut_20": (
        "except InterruptedError:\n            break",
        "never raised (PEP 475)",
    ),
    # rcmd.process (branch mutproc, the full run of 980 mutants). _Workers: its queue is replaced
    # and its pid set on first use, before either is read, and a pid is only compared with
    # getpid(): None, like 0, is no process's. A scan that raised leaves `killed` unread (the
    # error goes to the future). _wait_dead(): a time left of exactly 0.0 would only make one
    # more select() that returns at once, the next one being negative.
    "rcmd.process.xǁ_Workersǁ__init____mutmut_3": (
        "self._queue: queue.SimpleQueue[_Request] = None",
        "replaced on first use before it is read",
    ),
    "rcmd.process.xǁ_Workersǁ__init____mutmut_4": (
        "self._pid = None",
        "only compared with a pid: as 0, never equal",
    ),
    "rcmd.process.x__serve_scans__mutmut_4": (
        "killed, error = 1, None",
        "read only when the scan returned, which sets it",
    ),
    "rcmd.process.x__wait_dead__mutmut_7": (
        "time.monotonic()) >= 0",
        "0.0 left: one select() that returns at once",
    ),
    # _cookie_of(): the NUL looked for after the cookie is searched from past "RCMD_COMMAND_ID=",
    # so it is never at 0. _read(): every exec here is a Popen, which closes every descriptor
    # but the three it sets up, so O_CLOEXEC changes nothing for the one _read() holds.
    # kill_marked(): the pids caught mid-exec are read only when settling. waitid(P_ALL)
    # ignores its id; waitpid() of a zombie returns at once, with WNOHANG or without.
    "rcmd.process.x__cookie_of__mutmut_30": ("if end <= 0 else", "end is never 0"),
    "rcmd.process.x__cookie_of__mutmut_31": ("if end < 1 else", "end is never 0"),
    "rcmd.process.x__read__mutmut_6": (
        "os.O_RDONLY & os.O_CLOEXEC",
        "Popen closes other descriptors anyway",
    ),
    "rcmd.process.x_kill_marked__mutmut_12": (
        "unseen if (settle) or True else None",
        "read only when settling",
    ),
    "rcmd.process.xǁProcessTrackerǁreap_orphans__mutmut_10": (
        "os.waitid(os.P_ALL, 1,",
        "P_ALL ignores the id",
    ),
    "rcmd.process.xǁProcessTrackerǁreap_orphans__mutmut_34": (
        "os.waitpid(pid, 1)",
        "a zombie: returns at once either way",
    ),
    "rcmd.process.xǁProcessTrackerǁspawned__mutmut_6": (
        "self._reap_deferred = None",
        "read only as a truth value",
    ),
    "rcmd.process.x__serve_spawns__mutmut_4": (
        'error: BaseException | None = ""',
        "read only when start() raised, which sets it",
    ),
    # rcmd.server.session, the PONG batch and the read loop (mutrest). After the read loop, the
    # PONGs left are written unless the client is gone: with `or`, an empty batch writes b""
    # (nothing), and PONGs to a client that is gone go nowhere either way.
    "rcmd.server.session.xǁPrefixedSessionǁ_read_loop__mutmut_1": (
        "if self._pongs or not self._peer_gone",
        "writes nothing more that anyone receives",
    ),
    # The first bytes are kept only to test startswith(b"\x16\x03"): 2 or 3 of them alike.
    "rcmd.server.session.xǁPrefixedSessionǁ_read_messages__mutmut_9": (
        "self._first_bytes = data[:3]",
        "only its first 2 bytes are read",
    ),
    # rcmd.server.lifecycle and rcmd.naive's server side (NaiveSession).
    # logging formats a message only when it has arguments: the tracker's sentence, passed as
    # the format itself with none, is logged as it is, a "%" in it included.
    "rcmd.server.lifecycle.x_serve__mutmut_5": (
        "log.info(tracker.start(",
        "a message without arguments is not formatted",
    ),
    # The server thread's loop runs by run_until_complete/run_forever: nothing on that thread
    # asks for the current loop outside them (rcmd calls get_running_loop(); asyncio's own
    # primitives bind to the running loop on first use since Python 3.10).
    "rcmd.server.lifecycle.xǁServerThreadǁstart__mutmut_3": (
        "asyncio.set_event_loop(None)",
        "only the running loop is ever asked for",
    ),
    "rcmd.naive.xǁNaiveSessionǁ__init____mutmut_6": ("self._stopping = None", "read only as a truth value"),
    "rcmd.naive.xǁNaiveSessionǁ_run__mutmut_5": ("stdin=None", "spawn() reads it only as a truth value"),
    # rcmd.server.listener.
    "rcmd.server.listener.xǁ_Listenerǁ_start_tls__mutmut_3": (
        "handed_over = None\n        try:",
        "read only as a truth value",
    ),
    # Once handed over, the socket is the transport's, which has closed it by the time the
    # finally clause closes it again (a no-op), and nothing cancels the task any more: the
    # session is set before its first await, and only a connection without one is cancelled.
    "rcmd.server.listener.xǁ_Listenerǁ_start_tls__mutmut_49": (
        "handed_over = None\n            writer",
        "conn closed already; never cancelled after",
    ),
    "rcmd.server.listener.xǁ_Listenerǁ_start_tls__mutmut_50": (
        "handed_over = False\n            writer",
        "conn closed already; never cancelled after",
    ),
    # The peek at a TLS client's first byte: recv() runs once the socket is readable, and a
    # blocking socket's small send (the plaintext reason) to a fresh connection does not block;
    # connect_accepted_socket() makes it non-blocking again. A peek of 2 bytes: only [0] is read.
    "rcmd.server.listener.x__peek_first_byte__mutmut_3": (
        "conn.setblocking(True)",
        "no call on it can block; made non-blocking after",
    ),
    "rcmd.server.listener.x__peek_first_byte__mutmut_21": (
        "conn.recv(2, socket.MSG_PEEK)",
        "only data[0] is read",
    ),
    # close() closes the listening sockets and cancels the accept loops in the same step as it
    # sets _closing, so _start() never runs after: it reads _closing as False either way.
    "rcmd.server.listener.xǁServerǁclose__mutmut_1": ("self._closing = None", "never read after it is set"),
    "rcmd.server.listener.xǁServerǁclose__mutmut_2": ("self._closing = False", "never read after it is set"),
    # A naive connection is still among those in their handshake when its session starts: one
    # taken out to make room had its task cancelled before it could get there.
    "rcmd.server.listener.xǁServerǁ_serve__mutmut_14": (
        "self._handshaking.pop(accepted, )  # it has no handshake",
        "always there: the default is never used",
    ),
    "rcmd.server.listener.xǁ_Listenerǁ_start__mutmut_12": (
        "(server._closing) and False",
        "never read after it is set",
    ),
    # An accepted connection's task is set after _admit(), which is always given None.
    "rcmd.server.listener.xǁAcceptedǁ__init____mutmut_3": ("self.task = None", "always given None"),
    "rcmd.server.listener.xǁServerǁ_admit__mutmut_47": (
        "Accepted(peer, asyncio.get_running_loop().time(), None)",
        "always given None",
    ),
    "rcmd.server.listener.xǁServerǁ_admit__mutmut_50": (
        "Accepted(peer, asyncio.get_running_loop().time(), )",
        "always given None",
    ),
    "rcmd.server.listener.xǁAcceptedǁ__init____mutmut_5": (
        "self.evicted = None",
        "read only as a truth value",
    ),
    # setsockopt(TCP_NODELAY) takes any non-zero value as on.
    "rcmd.server.listener.xǁ_Listenerǁ_start__mutmut_9": (
        "socket.TCP_NODELAY, 2)",
        "any non-zero value is on",
    ),
    # An exception is always true: the type's name after `or` is never reached.
    "rcmd.server.listener.xǁ_Listenerǁ_start_tls__mutmut_48": ("type(None).__name__", "never evaluated"),
    # rcmd.server.complete. Codec names are looked up case-insensitively.
    "rcmd.server.complete.x__is_text__mutmut_3": ('name.encode("UTF-8")', "the same codec"),
    # expanduser() returns a path that does not start with "~" as it is.
    "rcmd.server.complete.x__paths__mutmut_23": (
        '(typed.startswith("~")) or True',
        "expanduser leaves it unchanged",
    ),
    # The deadline is a float of the monotonic clock: >= differs from > only if a reading
    # equals it to the nanosecond, and then the scan stops one check (SCAN_CHECK entries) early.
    "rcmd.server.complete.xǁ_Budgetǁtake__mutmut_10": (
        "time.monotonic() >= self.deadline",
        "differs only at the deadline's very instant",
    ),
    # rcmd.server.files. Codec names are looked up case-insensitively.
    "rcmd.server.files.x__display__mutmut_10": ('name.encode("UTF-8"', "the same codec"),
    "rcmd.server.files.x__display__mutmut_14": ('.decode("UTF-8"', "the same codec"),
    # follow_symlinks is read as a truth value.
    "rcmd.server.files.x__is_link__mutmut_4": ("follow_symlinks=None", "read as a truth value"),
    "rcmd.server.files.x__listing__mutmut_27": ("follow_symlinks=None", "read as a truth value"),
    "rcmd.server.files.xǁFileServiceǁ_change__mutmut_23": ("follow_symlinks=None", "read as a truth value"),
    "rcmd.server.files.xǁFileServiceǁ_open_upload__mutmut_6": (
        "info = os.stat(name, dir_fd=dir_fd, follow_symlinks=None)",
        "read as a truth value",
    ),
    "rcmd.server.files.xǁFileServiceǁ_open_upload__mutmut_60": (
        "follow_symlinks=None).st_ino",
        "read as a truth value",
    ),
    # The partial file was opened with O_NOFOLLOW: it is no link, to follow or not (unless another
    # process swaps one in between the open and this stat).
    "rcmd.server.files.xǁFileServiceǁ_open_upload__mutmut_63": (
        "dir_fd=dir_fd, ).st_ino",
        "not a link: opened O_NOFOLLOW",
    ),
    "rcmd.server.files.xǁFileServiceǁ_open_upload__mutmut_64": (
        "follow_symlinks=True).st_ino",
        "not a link: opened O_NOFOLLOW",
    ),
    # _walk() asks only after an open refused the name as a link or a non-directory: the stat
    # fails only if the name vanished in between.
    "rcmd.server.files.x__is_link__mutmut_9": ("return True", "only if the name vanished meanwhile"),
    # With size > limit, count * limit * 9 // (size * 10) is never above count - 1: min() takes it
    # whether its other term is count - 1 or count + 1.
    "rcmd.server.files.x__fitting__mutmut_11": ("min(len(entries) + 1,", "the other term is always smaller"),
    # Only .reason is read, never str() of it.
    "rcmd.server.files.xǁFileRefusedǁ__init____mutmut_2": ("super().__init__(None)", "str() never used"),
    # 0o777 is os.mkdir()'s default mode.
    "rcmd.server.files.xǁFileServiceǁ_change__mutmut_10": (
        "os.mkdir(name, dir_fd=dir_fd)",
        "the default mode",
    ),
    # After a FILE_DONE, _abandon() drops the upload at once: done is never read again; delete is
    # read as a truth value; and the partial file was renamed away, so deleting it fails (only
    # another upload of that name, begun during the directory's fsync, could be hit).
    "rcmd.server.files.xǁFileServiceǁ_end__mutmut_79": ("upload.done = None", "never read after"),
    "rcmd.server.files.xǁFileServiceǁ_end__mutmut_80": ("upload.done = False", "never read after"),
    "rcmd.server.files.xǁFileServiceǁ_end__mutmut_83": (
        "self._abandon(delete=None)",
        "read as a truth value",
    ),
    "rcmd.server.files.xǁFileServiceǁ_end__mutmut_84": (
        "upload.old_size)\n        self._abandon(delete=True)",
        "renamed away: nothing to delete",
    ),
    "rcmd.server.files.xǁFileServiceǁclose__mutmut_19": (
        "self._abandon(delete=None)",
        "read as a truth value",
    ),
    "rcmd.server.files.xǁFileServiceǁhandle__mutmut_22": (
        "self._abandon(delete=None)",
        "read as a truth value",
    ),
    # Commands start through subprocess.Popen(close_fds=True): no descriptor of the server reaches
    # them, close-on-exec or not.
    "rcmd.server.files.xǁFileServiceǁ_get__mutmut_7": ("os.O_RDONLY & os.O_CLOEXEC", "Popen closes every fd"),
    # asyncio fills in a write-buffer limit left out: high is 4 * low, low is high // 4; and a
    # higher mark is flow control only: the same bytes go, in the same order.
    "rcmd.server.files.xǁFileServiceǁ_send_file__mutmut_47": (
        "set_write_buffer_limits(high=None, low=CHUNK_SIZE)",
        "the same limits",
    ),
    "rcmd.server.files.xǁFileServiceǁ_send_file__mutmut_48": (
        "set_write_buffer_limits(high=4 * CHUNK_SIZE, low=None)",
        "the same limits",
    ),
    "rcmd.server.files.xǁFileServiceǁ_send_file__mutmut_49": (
        "set_write_buffer_limits(low=CHUNK_SIZE)",
        "the same limits",
    ),
    "rcmd.server.files.xǁFileServiceǁ_send_file__mutmut_50": (
        "set_write_buffer_limits(high=4 * CHUNK_SIZE, )",
        "the same limits",
    ),
    "rcmd.server.files.xǁFileServiceǁ_send_file__mutmut_52": ("high=5 * CHUNK_SIZE", "flow control only"),
    # Paths are normalised against an absolute directory: no . or .. component is left, and the
    # folder part is never empty; FileService.tree sets an unconfined tree's cwd on every use.
    "rcmd.server.files.xǁTreeǁ__init____mutmut_3": ("(root is None) and False", "cwd set on every use"),
    "rcmd.server.files.xǁTreeǁ_walk__mutmut_12": ('("XX..XX", ".")', "normalised: never there"),
    "rcmd.server.files.xǁTreeǁ_walk__mutmut_13": ('("..", "XX.XX")', "normalised: never there"),
    "rcmd.server.files.xǁTreeǁopen_parent__mutmut_12": ('("XX.XX", "..")', "normalised: never there"),
    "rcmd.server.files.xǁTreeǁopen_parent__mutmut_13": ('(".", "XX..XX")', "normalised: never there"),
    "rcmd.server.files.xǁTreeǁopen_parent__mutmut_17": (
        "(self.root is not None) and False",
        "the folder is never empty",
    ),
    "rcmd.server.files.xǁTreeǁopen_parent__mutmut_18": (
        "(self.root is not None) or True",
        "the folder is never empty",
    ),
    "rcmd.server.files.xǁTreeǁopen_parent__mutmut_19": (
        "folder if self.root is None else",
        "the folder is never empty",
    ),
    "rcmd.server.files.xǁTreeǁopen_parent__mutmut_21": ('folder or "XX/XX"', "the folder is never empty"),
    # A Usage is made by of() only, which sets its quota right after; its home is never read.
    "rcmd.server.files.xǁUsageǁ__init____mutmut_1": ("self.home = None", "never read"),
    "rcmd.server.files.xǁUsageǁof__mutmut_6": ("cls(home, None)", "of() sets the quota next"),
    # rcmd.cgroup (tests/test_mut_cgroup.py). mountinfo escapes the spaces in its fields, so
    # " - " is in a line once, and the file system type is the first word after it however
    # the rest is split.
    "rcmd.cgroup.x_own_cgroup__mutmut_27": ('line.rpartition(" - ")', "' - ' is there once"),
    "rcmd.cgroup.x_own_cgroup__mutmut_29": ("rest.split(None, 1)[0]", "the same first word"),
    "rcmd.cgroup.x_own_cgroup__mutmut_32": ('rest.split(" ", )[0]', "the same first word"),
    "rcmd.cgroup.x_own_cgroup__mutmut_35": ('rest.split(" ", 2)[0]', "the same first word"),
    "rcmd.cgroup.x__kill__mutmut_4": (
        '"cgroup.procs"), ) as procs',
        "text or bytes, split() counts the same pids",
    ),
    "rcmd.cgroup.x__wait_empty__mutmut_12": (
        "os.O_RDONLY & os.O_CLOEXEC",
        "O_RDONLY alone: Python opens descriptors non-inheritable anyway (PEP 446)",
    ),
    "rcmd.cgroup.x__wait_empty__mutmut_30": ("os.pread(events, 4097, 0)", "the file is a few dozen bytes"),
    "rcmd.cgroup.x__wait_empty__mutmut_34": ("if left < 0:", "at exactly 0: one more poll of 0 ms"),
    "rcmd.cgroup.x__wait_empty__mutmut_39": ("poller.poll(left * 1001)", "waits 0.1% longer: timing only"),
    # rmdir() of a symbolic link fails (ENOTDIR) and is suppressed, as skipping it does (and
    # cgroupfs has none).
    "rcmd.cgroup.x_kill_and_remove__mutmut_11": ("is_dir(follow_symlinks=None)", "rmdir of a link fails"),
    "rcmd.cgroup.x_kill_and_remove__mutmut_12": ("is_dir(follow_symlinks=True)", "rmdir of a link fails"),
    # The probe's cgroup is made, used and removed within create(): its name is never read.
    "rcmd.cgroup.xǁCommandCgroupsǁcreate__mutmut_35": ('"XXprobeXX"', "a name never read"),
    "rcmd.cgroup.xǁCommandCgroupsǁcreate__mutmut_36": ('"PROBE"', "a name never read"),
    # rcmd.server.accounts (tests/test_mut_accounts.py). An account read from the users file
    # always has a verifier (load_users() refuses an entry without), and AUTH_PROOF's proof is
    # 64 hex digits before ScramLogin sees it (rcmd.messages refuses any other).
    "rcmd.server.accounts.x_set_password__mutmut_10": (
        "if (old.verifier) or True else",
        "a loaded account has a verifier",
    ),
    "rcmd.server.accounts.xǁScramLoginǁproof__mutmut_43": (
        "account.verifier is None and received is None",
        "both are never None here",
    ),
    # rcmd.server.pty (tests/test_mut_pty.py). TIOCSCTTY in the child of a new session: 0 is
    # fcntl.ioctl()'s default argument, descriptor 1 is the same slave as 0, and 1 (steal it
    # from another session) changes nothing for a pty no session has.
    "rcmd.server.pty.x__take_controlling_terminal__mutmut_6": (
        "termios.TIOCSCTTY, )",
        "0 is the default argument",
    ),
    "rcmd.server.pty.x__take_controlling_terminal__mutmut_7": (
        "ioctl(1, termios.TIOCSCTTY",
        "the same slave",
    ),
    "rcmd.server.pty.x__take_controlling_terminal__mutmut_8": (
        "termios.TIOCSCTTY, 1)",
        "a new pty: nothing to steal",
    ),
    # rcmd.server.tls (tests/test_mut_tls.py). Flags read only as truth values: None for False.
    **{
        f"rcmd.server.tls.xǁTlsProtocolǁ{name}": (text, "read only as a truth value")
        for name, text in {
            "__init____mutmut_19": "self._fresh = None",
            "__init____mutmut_21": "self._peer_eof = None",
            "__init____mutmut_23": "self._eof_told = None",
            "__init____mutmut_25": "self._lost = None",
            "__init____mutmut_29": "self._app_paused = None",
            "__init____mutmut_31": "self._write_paused = None",
            "_read_records__mutmut_2": "ended = None",
            "_read_records__mutmut_13": "ended = None",
            "handshake__mutmut_3": "timed_out = None",
            "handshake__mutmut_16": "self._fresh = None",
            "resume_app_reading__mutmut_1": "self._app_paused = None",
        }.items()
    },
    # "" for None where only `x or ...` reads it, or where it is set before it is read.
    "rcmd.server.tls.xǁTlsProtocolǁ__init____mutmut_27": (
        'self._lost_exc: Exception | None = ""',
        "read only as `x or ...`: falsy like None",
    ),
    "rcmd.server.tls.xǁTlsProtocolǁ__init____mutmut_28": (
        'self._fatal: Exception | None = ""',
        "read only as `x or ...`: falsy like None",
    ),
    "rcmd.server.tls.xǁTlsProtocolǁ__init____mutmut_14": (
        'self.raw: asyncio.Transport | None = ""',
        "connection_made() sets it before anything reads it",
    ),
    "rcmd.server.tls.xǁTlsProtocolǁ__init____mutmut_18": (
        'self._arrived: asyncio.Future[None] | None = ""',
        "handshake() sets it before the first _wake(): connect_accepted_socket's waiter wakes"
        " accept_tls() before the transport's first read callback runs",
    ),
    "rcmd.server.tls.xǁTlsProtocolǁ__init____mutmut_20": (
        "self._fresh = True",
        "one more handshake step, on an empty BIO: it wants to read, and the handshake waits as it would",
    ),
    "rcmd.server.tls.x_handshake_threads__mutmut_4": (
        "os.cpu_count() or 2",
        "no count: max(1, 2 - 1) is max(1, 1 - 1)",
    ),
    # CLOSED, or None: every later check is `is State.OPEN` (None fails it as CLOSED does) except
    # close()'s `is State.CLOSED`, past which it only closes the raw transport again, which is
    # closing already (each of these is followed by its close or abort, or is connection_lost).
    **{
        f"rcmd.server.tls.xǁ{name}": (text, "None fails every `is OPEN` as CLOSED does")
        for name, text in {
            "TlsProtocolǁ_read_records__mutmut_23": "self.state = None",
            "TlsProtocolǁclose__mutmut_4": "self.state = None",
            "TlsProtocolǁconnection_lost__mutmut_3": "self.state = None",
            "TlsProtocolǁhandshake__mutmut_35": "self.state = None",
            "TlsProtocolǁwrite__mutmut_13": "self.state = None",
            "TlsTransportǁabort__mutmut_1": "self._tls.state = None",
        }.items()
    },
    # _flush() with nothing pending writes b"" (asyncio ignores it); with output pending, the raw
    # transport is closing only after close() or abort(), past which nothing writes to the BIO.
    "rcmd.server.tls.xǁTlsProtocolǁ_flush__mutmut_1": (
        "self.raw is not None or not self.raw.is_closing()",
        "differs only when there is nothing to send",
    ),
    "rcmd.server.tls.xǁTlsProtocolǁ_flush__mutmut_2": (
        "self._outgoing.pending or self.raw",
        "differs only when there is nothing to send",
    ),
    # read() raises SSLZeroReturnError only after our own close_notify (close() has set CLOSED
    # by then, and nothing reads), and SSLEOFError only after an EOF written to the incoming BIO
    # (never: a FIN is _peer_eof).
    "rcmd.server.tls.xǁTlsProtocolǁ_read_records__mutmut_14": (
        "ssl.SSLEOFError):\n            ended = False",
        "unreachable",
    ),
    "rcmd.server.tls.xǁTlsProtocolǁ_read_records__mutmut_29": (
        "(len(chunks) == 1) and False",
        "joins one chunk: equal bytes, a copy",
    ),
    # eof_received() comes only while the raw transport reads: not while the application has
    # paused reading (TlsTransport.pause_reading() pauses both), nor once CLOSED (close() and
    # abort() stop reading), and a HANDSHAKE is taken first.
    "rcmd.server.tls.xǁTlsProtocolǁeof_received__mutmut_4": (
        "State.OPEN or not self._app_paused",
        "the same for every state it is called in",
    ),
    # _peer_eof while the application is paused: only after its EOF was told (a FIN is read
    # only while the application reads), so _read_pending() would tell nothing.
    "rcmd.server.tls.xǁTlsProtocolǁresume_app_reading__mutmut_5": (
        "self.ssl_object.pending() and self._peer_eof",
        "the EOF was told already",
    ),
    # connection_lost(None) during the handshake: the raw transport closes itself cleanly only
    # when its protocol asks (close(), or a false eof_received(), and ours returns True).
    **{
        f"rcmd.server.tls.xǁTlsProtocolǁhandshake__mutmut_{number}": (text, "unreachable")
        for number, text in {
            26: "ConnectionResetError(None)",
            27: "XXthe connection was lostXX",
            28: "THE CONNECTION WAS LOST",
        }.items()
    },
    # rcmd.console (branch mutcon). format_size(): GiB is the last unit, so the loop ends there
    # whether or not the `unit == "GiB"` test breaks out of it. OutputWriter: codec names are
    # looked up case-insensitively.
    **{
        f"rcmd.console.x_format_size__mutmut_{number}": (f'unit == "{text}"', "GiB is the last unit anyway")
        for number, text in {21: "XXGiBXX", 22: "gib", 23: "GIB"}.items()
    },
    "rcmd.console.xǁOutputWriterǁ__init____mutmut_16": ('or "UTF-8"', "the same codec as utf-8"),
    # rcmd.server.config (branch mutcon). tls_handshake_cost(): float() reads "INF" as "inf"; a
    # flag read only as a truth value; the handshake is over at the server's second step, so a
    # ninth is never reached.
    "rcmd.server.config.x_tls_handshake_cost__mutmut_10": ('float("INF")', "the same infinity"),
    "rcmd.server.config.x_tls_handshake_cost__mutmut_4": (
        "client.check_hostname = None",
        "read as a truth value",
    ),
    "rcmd.server.config.x_tls_handshake_cost__mutmut_35": ("done = None", "read only as a truth value"),
    "rcmd.server.config.x_tls_handshake_cost__mutmut_30": ("range(9)", "done at the second step"),
    # ssl has OP_NO_RENEGOTIATION on every OpenSSL Python 3.11 builds with (1.1.1 up): the
    # getattr() default, there for older builds, is never taken.
    **{
        f"rcmd.server.config.xǁServerConfigǁ__post_init____mutmut_{number}": (text, "ssl has the flag")
        for number, text in {
            39: '"OP_NO_RENEGOTIATION", None)',
            42: '"OP_NO_RENEGOTIATION", )',
            45: '"OP_NO_RENEGOTIATION", 1)',
        }.items()
    },
}

DETECTED = {"killed", "timeout"}  # a hang under a mutant is a test that noticed it


def module_of(mutant: str) -> str:
    """``rcmd.framing.xǁLengthPrefixFramerǁ__init____mutmut_11`` -> ``rcmd.framing``."""
    return mutant.split(".x", 1)[0]


@functools.cache
def mutant_sources(module: str) -> dict[str, str]:
    """Function name -> its source, for every function in mutants/ for *module*."""
    path = Path("mutants", *module.split(".")).with_suffix(".py")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    return {
        node.name: ast.get_source_segment(text, node) or ""
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }


def still_equivalent(mutant: str) -> bool:
    """Whether *mutant* is still the change EQUIVALENT names: its text is in the mutant and
    not in the original function."""
    module, _, function = mutant.partition(".x")
    function = "x" + function
    text = EQUIVALENT[mutant][0]
    sources = mutant_sources(module)
    original = sources.get(function.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", "")
    return text in sources.get(function, "") and text not in original


def read_results() -> dict[str, str]:
    """Mutant name -> status, from every file mutants/ holds results for (as `mutmut results`
    names them, but whatever only_mutate was: make mutate-rest runs with another one)."""
    from mutmut.stats import status_by_exit_code

    results = {}
    for meta in sorted(Path("mutants").rglob("*.py.meta")):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if name.startswith("rcmd."):
                results[name] = status_by_exit_code[code]
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fail-under", type=float, default=0.0, help="exit 1 below this score (percent)")
    parser.add_argument("--module", action="append", default=[], help="only modules starting with this")
    args = parser.parse_args()

    results = {
        name: status
        for name, status in read_results().items()
        if not args.module or any(module_of(name).startswith(m) for m in args.module)
    }
    if not results:
        print("no mutmut results: run `mutmut run` first")
        return 1
    equivalent = {name for name in EQUIVALENT if name in results and still_equivalent(name)}
    by_module: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in results.items():
        counts = by_module[module_of(name)]
        counts["total"] += 1
        if name in equivalent and status not in DETECTED:
            counts["equivalent"] += 1
        elif status in DETECTED:
            counts["detected"] += 1

    print(f"{'module':<22}{'killed':>8}{'of':>6}{'score':>9}{'equivalent':>12}{'raw':>9}")
    sums: Counter[str] = Counter()
    for module in sorted(by_module):
        counts = by_module[module]
        sums.update(counts)
        print(row(module, counts))
    print(row("all", sums))

    survivors = sorted(n for n, s in results.items() if s not in DETECTED and n not in equivalent)
    killed = sorted(n for n in equivalent if results[n] in DETECTED)
    changed = sorted(n for n in EQUIVALENT if n in results and n not in equivalent)
    for name in survivors:
        print(f"  not killed ({results[name]}): {name}   (mutmut show '{name}')")
    for name in killed:
        print(f"  listed as equivalent but now {results[name]}: {name}: update EQUIVALENT")
    for name in changed:
        print(
            f"  listed as equivalent but its code no longer has {EQUIVALENT[name][0]!r}: {name}: look again"
        )
    score = score_of(sums)
    if score < args.fail_under:
        print(f"mutation score {score:.1f}% is under {args.fail_under:.0f}%")
        return 1
    return 0


def score_of(counts: Counter[str]) -> float:
    """Detected mutants as a percentage of those a test could detect (equivalents left out)."""
    killable = counts["total"] - counts["equivalent"]
    return 100.0 * counts["detected"] / killable if killable else 100.0


def row(label: str, counts: Counter[str]) -> str:
    killable = counts["total"] - counts["equivalent"]
    raw = 100.0 * counts["detected"] / counts["total"]
    return (
        f"{label:<22}{counts['detected']:>8}{killable:>6}{score_of(counts):>8.1f}%"
        f"{counts['equivalent']:>12}{raw:>8.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
