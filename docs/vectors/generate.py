"""Write the conformance vectors in this folder from rcmd's sans-I/O core: ``make vectors``.

The vectors are byte-exact transcripts, in hex, of every message and of whole exchanges,
for people writing an rcmd client or server in another language (docs/PROTOCOL.md is the
text; README.md beside this file describes the files). tests/test_vectors.py replays every
vector against rcmd in both roles and checks that this script still writes the committed
files, so the spec, the vectors and the code cannot drift apart silently.

Everything here is fixed: nonces, secret, commands, output. Nothing is random.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from rcmd import scram
from rcmd.auth import client_proof, server_proof
from rcmd.errors import RemoteProtocolError
from rcmd.framing import PREFIX
from rcmd.messages import (
    AuthChallenge,
    AuthOk,
    AuthProof,
    Cancel,
    Complete,
    Completions,
    Error,
    Exit,
    FileData,
    FileDone,
    FileEnd,
    FileError,
    Fs,
    FsResult,
    Get,
    GetReady,
    Hello,
    Message,
    Put,
    PutFrom,
    PutReady,
    Run,
    Stderr,
    Stdin,
    StdinEnd,
    Stdout,
    encode_message,
)
from rcmd.protocol import Connection, Role

HERE = Path(__file__).resolve().parent
SECRET = b"0123456789abcdef0123456789abcdef"
SERVER_NONCE = bytes(range(32))
CLIENT_NONCE = bytes(range(32, 64))
SOFTWARE = "rcmd 0.1.0"
# SCRAM (PROTOCOL.md 4c): user ann, password "pencil", salt 0x40..0x4f, 4096 rounds.
SALT = bytes(range(0x40, 0x50))
ROUNDS = 4096
_SCRAM_MESSAGE = scram.auth_message("ann", SERVER_NONCE, CLIENT_NONCE, SALT, ROUNDS)
_SALTED = scram.salted_password("pencil", SALT, ROUNDS)
SCRAM_PROOF = scram.client_proof(_SALTED, _SCRAM_MESSAGE).hex()
SCRAM_SIGNATURE = scram.server_signature(scram.server_key(_SALTED), _SCRAM_MESSAGE).hex()


def describe(message: Message) -> dict[str, Any]:
    """A message as JSON: its type name and its fields (data fields in hex)."""
    out: dict[str, Any] = {"type": message.TYPE.name}
    for name in getattr(message, "__slots__", ()):
        value = getattr(message, name)
        if isinstance(value, bytes):
            out[name + "_hex"] = value.hex()
        elif isinstance(value, dict):
            out[name] = dict(value)
        else:
            out[name] = value
    return out


def frame_hex(message: Message) -> str:
    payload = encode_message(message)
    return (PREFIX.pack(len(payload)) + payload).hex()


def message_vectors() -> list[dict[str, Any]]:
    """One frame of each message type, with its fields spelled out."""
    cases: list[tuple[str, str, Message]] = [
        ("server HELLO, no authentication", "S->C", Hello(software=SOFTWARE, encoding="utf-8", cwd="/srv")),
        (
            "server HELLO asking for authentication",
            "S->C",
            Hello(
                software=SOFTWARE, encoding="gbk", cwd="/srv", auth="hmac-sha256", nonce=SERVER_NONCE.hex()
            ),
        ),
        (
            "server HELLO announcing its frame limit (4 KiB: clients send 4,095-byte chunks)",
            "S->C",
            Hello(software=SOFTWARE, encoding="utf-8", cwd="/srv", max_frame_size=4096),
        ),
        ("client HELLO, no authentication", "C->S", Hello(software=SOFTWARE)),
        (
            "client HELLO with its proof",
            "C->S",
            Hello(
                software=SOFTWARE,
                nonce=CLIENT_NONCE.hex(),
                mac=client_proof(SECRET, SERVER_NONCE, CLIENT_NONCE).hex(),
            ),
        ),
        ("AUTH_OK", "S->C", AuthOk(server_proof(SECRET, SERVER_NONCE, CLIENT_NONCE).hex())),
        ("RUN, the least", "C->S", Run("echo hi")),
        (
            "RUN with every field",
            "C->S",
            Run("grep -c x", cwd="logs", env={"LANG": "C", "NAME": "中文"}, timeout=2.5, stdin=True),
        ),
        ("STDIN", "C->S", Stdin(b"x\n")),
        ("STDIN, empty", "C->S", Stdin(b"")),
        ("STDIN_END", "C->S", StdinEnd()),
        ("CANCEL", "C->S", Cancel()),
        ("STDOUT", "S->C", Stdout(b"hi\n")),
        ("STDERR", "S->C", Stderr(b"oops\n")),
        ("EXIT, success", "S->C", Exit(0, cwd="/srv")),
        ("EXIT, status 3", "S->C", Exit(3, cwd="/srv")),
        ("EXIT, killed by SIGKILL after a timeout", "S->C", Exit(-9, signal=9, timed_out=True, cwd="/srv")),
        ("EXIT, cancelled (SIGTERM)", "S->C", Exit(-15, signal=15, cancelled=True, cwd="/srv")),
        ("ERROR", "S->C", Error("authentication failed")),
        (
            "server HELLO asking for a user login",
            "S->C",
            Hello(
                software=SOFTWARE,
                encoding="utf-8",
                cwd="/srv",
                auth="scram-sha-256",
                nonce=SERVER_NONCE.hex(),
            ),
        ),
        (
            "client HELLO naming its user",
            "C->S",
            Hello(software=SOFTWARE, nonce=CLIENT_NONCE.hex(), user="ann"),
        ),
        ("AUTH_CHALLENGE", "S->C", AuthChallenge(SALT.hex(), ROUNDS)),
        ("AUTH_PROOF", "C->S", AuthProof(SCRAM_PROOF)),
        (
            "AUTH_OK after a login, with the user's directory",
            "S->C",
            AuthOk(SCRAM_SIGNATURE, cwd="/home/ann"),
        ),
        ("PUT, the least", "C->S", Put("notes.txt")),
        (
            "PUT with every field",
            "C->S",
            Put("bin/tool", size=5, mode=0o755, mtime=1700000000.5, resume=False),
        ),
        ("PUT_READY, nothing kept", "S->C", PutReady()),
        ("PUT_READY, a partial file kept", "S->C", PutReady(3, block_size=1048576, blocks=[_sha(b"hel")])),
        ("PUT_FROM", "C->S", PutFrom(3)),
        ("FILE_DATA", "C->S", FileData(b"lo")),
        ("FILE_END", "C->S", FileEnd(5, _sha(b"hello"))),
        (
            "FILE_END, the sender gives up",
            "C->S",
            FileEnd(4, _sha(b"hell"), error="tool changed while it was being sent"),
        ),
        ("FILE_DONE", "S->C", FileDone(5, _sha(b"hello"), resumed_from=3)),
        ("FILE_ERROR", "S->C", FileError("/srv/x: No such file or directory")),
        (
            "FILE_ERROR, a partial file kept",
            "S->C",
            FileError("cannot write /srv/x: No space left on device", kept=262144),
        ),
        ("GET, nothing kept", "C->S", Get("notes.txt")),
        (
            "GET with a partial file",
            "C->S",
            Get("notes.txt", partial=3, block_size=1048576, blocks=[_sha(b"hel")]),
        ),
        ("GET_READY", "S->C", GetReady(5, offset=3, mode=0o644, mtime=1700000000.5)),
        ("FS ls", "C->S", Fs("ls", "logs")),
        ("FS pwd", "C->S", Fs("pwd")),
        (
            "FS_RESULT of ls",
            "S->C",
            FsResult(
                cwd="/srv",
                entries=[{"name": "a.txt", "type": "file", "size": 5, "mode": 420, "mtime": 1700000000.5}],
            ),
        ),
        ("FS_RESULT of df", "S->C", FsResult(cwd="/", used=5, quota=1048576)),
        ("COMPLETE a path (the user typed `ls my\\ `)", "C->S", Complete("my ", "path")),
        ("COMPLETE a command name", "C->S", Complete("pyth", "command")),
        ("COMPLETIONS", "S->C", Completions(("my dir/", "my file.txt"))),
        ("COMPLETIONS, some left out", "S->C", Completions(("python3", "python3.12"), truncated=True)),
    ]
    return [
        {"name": name, "direction": direction, "message": describe(message), "frame": frame_hex(message)}
        for name, direction, message in cases
    ]


def exchange(name: str, steps: list[tuple[str, Message]], note: str = "") -> dict[str, Any]:
    """A whole conversation, checked here by running it through a client and a server Connection."""
    client, server = Connection(Role.CLIENT), Connection(Role.SERVER)
    out = []
    for direction, message in steps:
        sender, receiver = (client, server) if direction == "C->S" else (server, client)
        data = sender.send(message)
        receiver.receive_data(data)
        received = receiver.next_event()
        assert received == message, (name, received, message)
        out.append({"direction": direction, "message": describe(message), "frame": data.hex()})
    vector: dict[str, Any] = {"name": name, "steps": out}
    if note:
        vector["note"] = note
    return vector


def exchange_vectors() -> list[dict[str, Any]]:
    hello = Hello(software=SOFTWARE, encoding="utf-8", cwd="/srv")
    files_hello = Hello(software=SOFTWARE, encoding="utf-8", cwd="/srv", extensions=("files",))
    auth_hello = Hello(
        software=SOFTWARE, encoding="utf-8", cwd="/srv", auth="hmac-sha256", nonce=SERVER_NONCE.hex()
    )
    proof = client_proof(SECRET, SERVER_NONCE, CLIENT_NONCE).hex()
    client_auth_hello = Hello(software=SOFTWARE, nonce=CLIENT_NONCE.hex(), mac=proof)
    auth_ok = AuthOk(server_proof(SECRET, SERVER_NONCE, CLIENT_NONCE).hex())
    return [
        exchange(
            "handshake without a secret, then echo hi",
            [
                ("S->C", hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Run("echo hi")),
                ("S->C", Stdout(b"hi\n")),
                ("S->C", Exit(0, cwd="/srv")),
            ],
        ),
        exchange(
            "handshake with the secret of PROTOCOL.md section 4a, then true",
            [
                ("S->C", auth_hello),
                ("C->S", client_auth_hello),
                ("S->C", auth_ok),
                ("C->S", Run("true")),
                ("S->C", Exit(0, cwd="/srv")),
            ],
            note="secret: the 32 ASCII bytes 0123456789abcdef0123456789abcdef",
        ),
        exchange(
            "stdout and stderr, a UTF-8 character split between two STDOUT frames",
            [
                ("S->C", hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Run("printf '\\344\\270'; echo oops >&2; printf '\\255\\n'; exit 3")),
                ("S->C", Stdout("中".encode()[:2])),
                ("S->C", Stderr(b"oops\n")),
                ("S->C", Stdout("中".encode()[2:] + b"\n")),
                ("S->C", Exit(3, cwd="/srv")),
            ],
            note="decoded incrementally, stdout is the text '中\\n' and stderr 'oops\\n'",
        ),
        exchange(
            "a GBK server: a character split between two STDOUT frames",
            [
                ("S->C", Hello(software=SOFTWARE, encoding="gbk", cwd="/srv")),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Run("type zh.txt")),
                ("S->C", Stdout("中".encode("gbk")[:1])),
                ("S->C", Stdout("中".encode("gbk")[1:] + "文\r\n".encode("gbk"))),
                ("S->C", Exit(0, cwd="/srv")),
            ],
            note="decoded incrementally as gbk, stdout is the text '中文\\r\\n'",
        ),
        exchange(
            "stdin, then end of input",
            [
                ("S->C", hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Run("wc -c", stdin=True)),
                ("C->S", Stdin(b"hello")),
                ("C->S", StdinEnd()),
                ("S->C", Stdout(b"5\n")),
                ("S->C", Exit(0, cwd="/srv")),
            ],
        ),
        exchange(
            "a timeout: the server kills the command",
            [
                ("S->C", hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Run("sleep 60", timeout=0.5)),
                ("S->C", Exit(-15, signal=15, timed_out=True, cwd="/srv")),
            ],
        ),
        exchange(
            "a login as ann with the password of PROTOCOL.md section 4c, then pwd",
            [
                (
                    "S->C",
                    Hello(
                        software=SOFTWARE,
                        encoding="utf-8",
                        cwd="/srv",
                        auth="scram-sha-256",
                        nonce=SERVER_NONCE.hex(),
                        extensions=("files",),
                    ),
                ),
                ("C->S", Hello(software=SOFTWARE, nonce=CLIENT_NONCE.hex(), user="ann")),
                ("S->C", AuthChallenge(SALT.hex(), ROUNDS)),
                ("C->S", AuthProof(SCRAM_PROOF)),
                ("S->C", AuthOk(SCRAM_SIGNATURE, cwd="/home/ann")),
                ("C->S", Fs("pwd")),
                ("S->C", FsResult(cwd="/home/ann")),
            ],
            note="password: pencil; salt: the bytes 0x40 to 0x4f; 4096 PBKDF2 rounds",
        ),
        exchange(
            "an upload that resumes: 3 bytes kept, 2 sent, the whole verified",
            [
                ("S->C", files_hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Put("notes.txt", size=5)),
                ("S->C", PutReady(3, block_size=1048576, blocks=[_sha(b"hel")])),
                ("C->S", PutFrom(3)),
                ("C->S", FileData(b"lo")),
                ("C->S", FileEnd(5, _sha(b"hello"))),
                ("S->C", FileDone(5, _sha(b"hello"), resumed_from=3)),
            ],
            note="the server's partial file .notes.txt.rcmd-part held 'hel'; FILE_END's SHA-256 covers all 5 bytes",
        ),
        exchange(
            "a download whose kept block differs: sent from 0",
            [
                ("S->C", files_hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Get("notes.txt", partial=3, block_size=1048576, blocks=[_sha(b"HEL")])),
                ("S->C", GetReady(5, offset=0, mode=0o644, mtime=1700000000.5)),
                ("S->C", FileData(b"hello")),
                ("S->C", FileEnd(5, _sha(b"hello"))),
                ("C->S", Run("true")),
                ("S->C", Exit(0, cwd="/srv")),
            ],
        ),
        exchange(
            "a refused upload, then ls",
            [
                ("S->C", files_hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Put("logs", size=1)),
                ("S->C", FileError("/srv/logs: is a directory")),
                ("C->S", Fs("ls", "logs")),
                (
                    "S->C",
                    FsResult(
                        cwd="/srv",
                        entries=[{"name": "a.txt", "type": "file", "size": 5, "mode": 420, "mtime": 1.5}],
                    ),
                ),
            ],
        ),
        exchange(
            "Tab between two commands: a path completed in the connection's directory",
            [
                ("S->C", Hello(software=SOFTWARE, encoding="utf-8", cwd="/srv", extensions=("complete",))),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Complete("my ", "path")),
                ("S->C", Completions(("my dir/", "my file.txt"))),
                ("C->S", Run("cat 'my file.txt'")),
                ("S->C", Stdout(b"x\n")),
                ("S->C", Exit(0, cwd="/srv")),
            ],
            note="the user typed `cat my\\ ` and Tab: COMPLETE carries the word unescaped, and the "
            "prompt offers both items; the user chose `my file.txt`, which the prompt quotes",
        ),
        exchange(
            "a sticky cd",
            [
                ("S->C", hello),
                ("C->S", Hello(software=SOFTWARE)),
                ("C->S", Run("cd /tmp")),
                ("S->C", Exit(0, cwd="/tmp")),
                ("C->S", Run("pwd")),
                ("S->C", Stdout(b"/tmp\n")),
                ("S->C", Exit(0, cwd="/tmp")),
            ],
        ),
    ]


def error_vectors() -> list[dict[str, Any]]:
    """Bytes a receiver must refuse: its role, the frames that bring it to the state, the bad
    bytes, and the reason rcmd gives in its ERROR."""
    server_hello = frame_hex(Hello(software=SOFTWARE, encoding="utf-8", cwd="/srv"))
    client_hello = frame_hex(Hello(software=SOFTWARE))
    run_no_stdin = frame_hex(Run("true"))
    cases: list[tuple[str, Role, list[str], str]] = [
        ("frame over the limit, refused on its length", Role.SERVER, [], "ffffffff01"),
        ("frame over the 8 KiB handshake limit", Role.SERVER, [], "0000200101"),
        ("frame over the 1 MiB limit after the handshake", Role.SERVER, [client_hello], "0010000102"),
        ("empty payload", Role.SERVER, [client_hello], "00000000"),
        ("unknown type byte", Role.SERVER, [client_hello], "0000000142"),
        ("first message not HELLO", Role.SERVER, [], run_no_stdin),
        ("HELLO twice", Role.SERVER, [client_hello], client_hello),
        ("another protocol version", Role.SERVER, [], frame_hex(Hello(protocol=2))),
        ("JSON body not an object", Role.SERVER, [client_hello], "00000003025b5d"),
        (
            "a server HELLO announcing a frame limit below 256 bytes",
            Role.CLIENT,
            [],
            _raw(0x01, b'{"protocol":1,"max_frame_size":0}'),
        ),
        (
            "a server HELLO announcing a frame limit that is not an integer",
            Role.CLIENT,
            [],
            _raw(0x01, b'{"protocol":1,"max_frame_size":"65536"}'),
        ),
        ("JSON body not UTF-8", Role.SERVER, [client_hello], "0000000202ff"),
        ("RUN without its command", Role.SERVER, [client_hello], "00000003027b7d"),
        (
            "a boolean where an integer goes",
            Role.CLIENT,
            [server_hello],
            (PREFIX.pack(len(b'\x12{"returncode":true}')) + b'\x12{"returncode":true}').hex(),
        ),
        ("a body on CANCEL", Role.SERVER, [client_hello], "000000020500"),
        ("a client sending STDOUT", Role.SERVER, [client_hello], frame_hex(Stdout(b"x"))),
        ("STDIN with stdin closed", Role.SERVER, [client_hello, run_no_stdin], frame_hex(Stdin(b"x"))),
        ("RUN while running", Role.SERVER, [client_hello, run_no_stdin], run_no_stdin),
        ("EXIT while idle", Role.CLIENT, [server_hello], frame_hex(Exit(0))),
        ("connection closed inside a frame", Role.SERVER, [client_hello], "0000000a02"),
        (
            "FILE_DATA from the client during a GET",
            Role.SERVER,
            [client_hello, frame_hex(Get("notes.txt"))],
            frame_hex(FileData(b"x")),
        ),
        ("FILE_DATA while idle, to a client", Role.CLIENT, [server_hello], frame_hex(FileData(b"x"))),
        ("PUT while a command runs", Role.SERVER, [client_hello, run_no_stdin], frame_hex(Put("x"))),
        (
            "COMPLETE while a command runs",
            Role.SERVER,
            [client_hello, run_no_stdin],
            frame_hex(Complete("x")),
        ),
        ("COMPLETIONS nobody asked for", Role.CLIENT, [server_hello], frame_hex(Completions(("x",)))),
        (
            "COMPLETE of an unknown kind",
            Role.SERVER,
            [client_hello],
            _raw(0x09, b'{"text":"x","kind":"user"}'),
        ),
        (
            "a block hash that is not 64 hex digits",
            Role.SERVER,
            [client_hello],
            _raw(0x21, b'{"path":"x","partial":1,"block_size":1024,"blocks":["abc"]}'),
        ),
        (
            "a file size beyond 2**53-1",
            Role.SERVER,
            [client_hello],
            _raw(0x20, b'{"path":"x","size":9007199254740992}'),
        ),
    ]
    out = []
    for name, role, before, bad in cases:
        conn = Connection(role)
        conn.send(Hello(software=SOFTWARE))
        for frame in before:
            conn.receive_data(bytes.fromhex(frame))
            conn.next_event()
        conn.receive_data(bytes.fromhex(bad))
        if name == "connection closed inside a frame":
            conn.receive_data(b"")
        try:
            while True:
                event = conn.next_event()
                assert not isinstance(event, Message), (name, event)
                if name != "connection closed inside a frame":
                    raise AssertionError(f"{name}: accepted")
                raise AssertionError(f"{name}: no error at EOF")
        except RemoteProtocolError as exc:
            reason = str(exc)
        out.append(
            {
                "name": name,
                "receiver": role.value,
                "before": before,
                "input": bad,
                "then_eof": name == "connection closed inside a frame",
                "reason": reason,
            }
        )
    return out


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _raw(kind: int, body: bytes) -> str:
    """A frame built by hand (the encoder refuses what it holds), in hex."""
    return (PREFIX.pack(1 + len(body)) + bytes((kind,)) + body).hex()


def write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(out_dir: Path = HERE) -> None:
    write(out_dir / "messages.json", message_vectors())
    write(out_dir / "exchanges.json", exchange_vectors())
    write(out_dir / "errors.json", error_vectors())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
