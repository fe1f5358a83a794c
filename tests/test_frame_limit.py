"""A server's frame limit (``--max-frame-size``) and the client's chunks: the server announces
its limit in HELLO ``max_frame_size``, and every client sends STDIN and FILE_DATA in chunks
that fit it (docs/PROTOCOL.md §2). Before, a client sent 64 KiB STDIN and 256 KiB FILE_DATA
frames whatever the server took, and a server with a smaller limit ended the connection."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import threading

import pytest
from conftest import CLIENT_ARGV

import rcmd
from rcmd import aio
from rcmd.framing import CLOSED, NEED_DATA, LengthPrefixFramer, frame_header
from rcmd.messages import Hello, Stdin, decode_message, encode_message

MiB = 1024 * 1024
KiB = 1024
UPLOAD = hashlib.shake_256(b"rcmd-frame-limit").digest(MiB)  # 1 MiB, not compressible


@pytest.fixture(scope="module", params=[4096, 65536])
def small(request, server_factory, tmp_path_factory):
    """A server that takes frames of at most 4 KiB or 64 KiB, run in a scratch directory."""
    area = tmp_path_factory.mktemp(f"limit{request.param}")
    server = server_factory("--encoding", "utf-8", "--cwd", str(area), "--max-frame-size", str(request.param))
    server.limit = request.param
    server.area = area
    return server


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_hello_carries_the_servers_frame_limit(small):
    with rcmd.connect(*small.address) as client:
        assert client.server_hello.max_frame_size == small.limit
        assert client.stdin_chunk_size == min(256 * KiB, small.limit - 1)


def test_a_1_mib_input_goes_through_run(small):
    with rcmd.connect(*small.address) as client:
        result = client.run("sha256sum", input=UPLOAD, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[0].decode() == digest(UPLOAD)
        assert client.run("echo still here").stdout == b"still here\n"


def test_a_1_mib_stdin_goes_through_stdin_source(small, tmp_path):
    source = tmp_path / "in.bin"
    source.write_bytes(UPLOAD)
    with rcmd.connect(*small.address) as client, open(source, "rb") as stdin:
        with client.stream("sha256sum", stdin_source=stdin.fileno()) as events:
            out = b"".join(getattr(event, "data", b"") for event in events)
        assert events.exit is not None
        assert events.exit.returncode == 0, out
        assert out.split()[0].decode() == digest(UPLOAD)


def test_the_cli_pipes_a_1_mib_stdin(small):
    proc = subprocess.run(
        [*CLIENT_ARGV, "{}:{}".format(*small.address), "-c", "sha256sum"],
        input=UPLOAD,
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0].decode() == digest(UPLOAD)


def test_the_asyncio_client_sends_a_1_mib_input(small):
    async def main() -> rcmd.CompletedCommand:
        async with aio.connect(*small.address) as client:
            assert client.server_hello is not None
            assert client.server_hello.max_frame_size == small.limit
            return await client.run("sha256sum", input=UPLOAD, timeout=60)

    result = asyncio.run(main())
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0].decode() == digest(UPLOAD)


def test_a_put_of_a_1_mib_file(small, tmp_path):
    source = tmp_path / "up.bin"
    source.write_bytes(UPLOAD)
    remote = small.area / f"put-{small.limit}.bin"
    with rcmd.connect(*small.address) as client:
        done = client.put(source, str(remote))
        assert (done.size, done.sha256) == (MiB, digest(UPLOAD))
        got = client.get(str(remote), tmp_path / "down.bin")
        assert got.sha256 == digest(UPLOAD)
    assert remote.read_bytes() == UPLOAD


def test_the_cli_puts_a_1_mib_file(small, tmp_path):
    (tmp_path / "cli.bin").write_bytes(UPLOAD)
    remote = small.area / f"cli-{small.limit}.bin"
    proc = subprocess.run(
        [*CLIENT_ARGV, "put", "-H", "{}:{}".format(*small.address), "cli.bin", str(remote)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert remote.read_bytes() == UPLOAD


def stdin_frames_from_a_client(hello: Hello) -> list[int]:
    """The payload sizes of the STDIN frames rcmd's client sends for a 200 KiB input to a
    fake server whose HELLO is *hello*."""
    listener = socket.create_server(("127.0.0.1", 0))
    sizes: list[int] = []
    with listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                payload = encode_message(hello)
                conn.sendall(frame_header(len(payload)) + payload)
                framer = LengthPrefixFramer(1 << 24)
                got = 0
                while got < 200 * KiB:
                    chunk = conn.recv(1 << 16)
                    if not chunk:
                        return
                    framer.receive_data(chunk)
                    while (frame := framer.next_frame()) not in (NEED_DATA, CLOSED):
                        message = decode_message(bytes(frame))
                        if isinstance(message, Stdin):
                            sizes.append(len(frame))
                            got += len(message.data)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = rcmd.connect(*listener.getsockname()[:2])
        try:
            stream = client.stream("cat", input=bytes(200 * KiB))
            thread.join(30)
            del stream
        finally:
            client.close()
    return sizes


def test_a_client_facing_a_hello_without_max_frame_size_sends_64_kib():
    sizes = stdin_frames_from_a_client(Hello(software="older", encoding="utf-8"))
    assert sizes == [64 * KiB + 1, 64 * KiB + 1, 64 * KiB + 1, 8 * KiB + 1]


def test_a_client_facing_an_announced_limit_sends_chunks_that_fit():
    sizes = stdin_frames_from_a_client(Hello(software="small", encoding="utf-8", max_frame_size=1000))
    assert max(sizes) == 1000
    assert sum(size - 1 for size in sizes) == 200 * KiB
    sizes = stdin_frames_from_a_client(Hello(software="big", encoding="utf-8", max_frame_size=1 << 30))
    assert sizes == [200 * KiB + 1]  # at most 256 KiB a chunk
