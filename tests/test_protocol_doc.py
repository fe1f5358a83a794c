"""docs/PROTOCOL.md is enough to talk to rcmd: a client written from it alone, and its example."""

from __future__ import annotations

import json
import re
import socket
import struct
from pathlib import Path

from rcmd.messages import Exit, Hello, Run, Stdout, encode_message

DOC = Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md"


def spec_client_run(address, command: str) -> tuple[bytes, dict]:
    """A client written from the spec with the standard library only: no rcmd imports."""

    def read_exact(sock, n):
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk, "server closed the connection"
            data += chunk
        return data

    def read_message(sock):
        (length,) = struct.unpack("!I", read_exact(sock, 4))
        payload = read_exact(sock, length)
        return payload[0], payload[1:]

    def send_message(sock, kind, body: bytes):
        payload = bytes([kind]) + body
        sock.sendall(struct.pack("!I", len(payload)) + payload)

    with socket.create_connection(address, timeout=30) as sock:
        kind, body = read_message(sock)
        assert kind == 0x01
        assert json.loads(body)["protocol"] == 1
        send_message(sock, 0x01, json.dumps({"protocol": 1}).encode())
        send_message(sock, 0x02, json.dumps({"command": command}).encode())
        stdout = b""
        while True:
            kind, body = read_message(sock)
            if kind == 0x10:
                stdout += body
            elif kind == 0x12:
                return stdout, json.loads(body)


def test_a_client_written_from_the_spec_alone_works(server):
    stdout, exit = spec_client_run(server.address, "echo hi; exit 4")
    assert stdout == b"hi\n"
    assert exit["returncode"] == 4


def test_the_worked_example_is_what_rcmd_sends():
    text = DOC.read_text(encoding="utf-8")
    lines = re.findall(r"^(S->C|C->S)  ([0-9a-f ]{11})  ([0-9a-f]{2}) (.*)$", text, re.M)
    assert len(lines) == 5
    messages = [
        Hello(software="rcmd 0.1.0", encoding="utf-8", cwd="/srv"),
        Hello(software="rcmd 0.1.0"),
        Run("echo hi"),
        Stdout(b"hi\n"),
        Exit(0, cwd="/srv"),
    ]
    for (_direction, length, kind, body), message in zip(lines, messages, strict=False):
        payload = encode_message(message)
        assert bytes.fromhex(length) == struct.pack("!I", len(payload))
        assert int(kind, 16) == payload[0]
        if payload[0] != 0x10:
            assert body.encode() == payload[1:]


def test_the_worked_hmac_example_is_what_rcmd_computes(tmp_path):
    """§4a: the secret file's bytes (trailing newline dropped, never hex-decoded) and the proofs."""
    from rcmd.auth import client_proof, load_secret, server_proof

    text = DOC.read_text(encoding="utf-8")
    fields = dict(re.findall(r"^(Ns|Nc|client mac|server mac)\b.*?([0-9a-f]{64})$", text, re.M))
    assert sorted(fields) == ["Nc", "Ns", "client mac", "server mac"]
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"0123456789abcdef0123456789abcdef\r\n")
    secret_file.chmod(0o600)
    secret = load_secret(secret_file)
    assert secret == b"0123456789abcdef0123456789abcdef"
    ns, nc = bytes.fromhex(fields["Ns"]), bytes.fromhex(fields["Nc"])
    assert client_proof(secret, ns, nc).hex() == fields["client mac"]
    assert server_proof(secret, ns, nc).hex() == fields["server mac"]
