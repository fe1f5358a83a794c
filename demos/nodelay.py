"""TCP_NODELAY: it changes when the sender sends, not how the reader sees the stream.

1. Write-write-read: a 4-byte header and a 10-byte body in two send()s, then wait for a
   one-byte answer. With Nagle's algorithm (the default) the body waits until the header is
   acknowledged, and the peer delays that ACK (up to 40 ms on Linux). TCP_NODELAY, or one
   send() of header+body (what rcmd and multiprocessing.connection do), avoids the stall.
2. Coalescing still happens at the receiver: with or without TCP_NODELAY, two sends that have
   both arrived before the reader's recv() come out of it as one. Only framing tells them apart.

The reader waits in select(), not in recv(): on Linux a reader blocked inside recv() for more
bytes than have come (MSG_WAITALL, SO_RCVLOWAT) can hold back the delayed ACK that a Nagle
sender is waiting for, and both then wait (over a minute, on the machine this was written on).
"""

import select
import socket
import statistics
import threading
import time


def run(nodelay: bool, rounds: int = 20) -> tuple[float, bytes]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
    server, _ = listener.accept()

    def answer_each_request() -> None:
        for _ in range(rounds):
            need = 14  # header + body, read with plain recv()s
            while need:
                need -= len(server.recv(need))
            server.sendall(b"k")

    answer = threading.Thread(target=answer_each_request)
    answer.start()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        client.send(b"HEAD")
        client.send(b"0123456789")
        client.recv(1)
        times.append(time.perf_counter() - start)
    answer.join()
    client.send(b"hi")
    client.send(b"meinv")  # the tutorial's two quick sends
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 7)
    select.select([server], [], [], 10)  # readable once both sends are here
    glued = server.recv(1024)
    for sock in (client, server, listener):
        sock.close()
    return statistics.median(times) * 1000, glued


def main() -> dict:
    results = {}
    for nodelay in (False, True):
        ms, glued = run(nodelay)
        results[nodelay] = {"median_ms": ms, "one_recv": glued}
        print(
            f"TCP_NODELAY={int(nodelay)}: write-write-read {ms:7.3f} ms median; two sends, one recv(): {glued!r}"
        )
    return results


if __name__ == "__main__":
    main()
