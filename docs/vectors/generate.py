"""Write the conformance vectors in this folder from rcmd's sans-I/O core: ``make vectors``.

The vectors are byte-exact transcripts, in hex, of every message and of whole exchanges,
for people writing an rcmd client or server in another language (docs/PROTOCOL.md is the
text; README.md beside this file describes the files). tests/test_vectors.py replays every
vector against rcmd in both roles and checks that this script still writes the committed
files, so the spec, the vectors and the code cannot drift apart silently.

Everything here is fixed: nonces, secret, commands, output. Nothing is random.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rcmd.auth import client_proof, server_proof
from rcmd.errors import RemoteProtocolError
from rcmd.framing import PREFIX
from rcmd.messages import (
    AuthOk,
    Cancel,
    Error,
    Exit,
    Hello,
    Message,
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
            "stdin, end of input, then a cancel crossing the EXIT",
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


def write(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(out_dir: Path = HERE) -> None:
    write(out_dir / "messages.json", message_vectors())
    write(out_dir / "exchanges.json", exchange_vectors())
    write(out_dir / "errors.json", error_vectors())


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
