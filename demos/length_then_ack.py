"""The tutorial's first fix: send the length, wait for "recv_ready", then send the data.

It works, but every reply costs an extra round trip: the sender must hear the ack before
it may send the body. A 4-byte length prefix (the second fix, and rcmd's) carries the same
information in the same write. Both are timed here over loopback, 200 replies each.
"""

import socket
import statistics
import struct
import threading
import time

REPLY = b"output of some command\n" * 20


def serve(conn: socket.socket, rounds: int, ack: bool) -> None:
    for _ in range(rounds):
        conn.recv(64)  # the command
        if ack:
            conn.sendall(str(len(REPLY)).encode())
            conn.recv(64)  # "recv_ready"
            conn.sendall(REPLY)
        else:
            conn.sendall(struct.pack("!I", len(REPLY)) + REPLY)


def read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        data += sock.recv(n - len(data))  # recv() may return less: loop, never trust one call
    return data


def client(sock: socket.socket, ack: bool) -> None:
    sock.sendall(b"ls")
    if ack:
        length = int(sock.recv(64))  # small and alone on the wire: the sender waits for us
        sock.sendall(b"recv_ready")
    else:
        (length,) = struct.unpack("!I", read_exactly(sock, 4))
    assert read_exactly(sock, length) == REPLY


def main(rounds: int = 200) -> dict:
    results = {}
    for ack in (True, False):
        listener = socket.create_server(("127.0.0.1", 0))
        sock = socket.create_connection(listener.getsockname())
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn, _ = listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = threading.Thread(target=serve, args=(conn, rounds, ack))
        server.start()
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            client(sock, ack)
            times.append(time.perf_counter() - start)
        server.join()
        for s in (sock, conn, listener):
            s.close()
        results["ack" if ack else "prefix"] = statistics.median(times) * 1e6
    ratio = results["ack"] / results["prefix"]
    print(f"length, ack, data: {results['ack']:6.1f} µs per reply (median of {rounds})")
    print(f"4-byte prefix:     {results['prefix']:6.1f} µs per reply; the ack costs {ratio:.2f}x")
    return {**results, "ratio": ratio}


if __name__ == "__main__":
    main()
