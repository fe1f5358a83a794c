"""The tutorial's third fix: a 4-byte length, a JSON header, then the body the header sizes.

Good for file transfer: the header says the name, size and checksum; the reader takes exactly
`size` bytes after it, so several files on one connection never run into each other. rcmd
puts its JSON (RUN, EXIT) inside length-prefixed frames the same way. Here, two files are
sent back to back in one sendall() and come out exactly.
"""

import hashlib
import json
import socket
import struct


def send_file(sock: socket.socket, name: str, body: bytes) -> bytes:
    header = json.dumps(
        {"name": name, "size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    ).encode()
    return struct.pack("!I", len(header)) + header + body


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:  # recv() may return less than asked: keep reading
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"stream ended after {len(data)} of {n} bytes")
        data += chunk
    return bytes(data)


def recv_file(sock: socket.socket) -> tuple[dict, bytes]:
    (header_size,) = struct.unpack("!I", recv_exactly(sock, 4))
    header = json.loads(recv_exactly(sock, header_size))
    body = recv_exactly(sock, header["size"])
    assert hashlib.sha256(body).hexdigest() == header["sha256"]
    return header, body


def main() -> dict:
    files = {
        "notes.txt": "粘包 happens\n".encode() * 100,
        "empty.bin": b"",
        "data.bin": bytes(range(256)) * 64,
    }
    listener = socket.create_server(("127.0.0.1", 0))
    sender = socket.create_connection(listener.getsockname())
    receiver, _ = listener.accept()
    sender.sendall(b"".join(send_file(sender, name, body) for name, body in files.items()))
    received = {}
    for _ in files:
        header, body = recv_file(receiver)
        received[header["name"]] = body
        print(f"{header['name']:10} {header['size']:6} bytes, sha256 {header['sha256'][:12]}… intact")
    for sock in (sender, receiver, listener):
        sock.close()
    return {"intact": received == files, "names": list(received)}


if __name__ == "__main__":
    main()
