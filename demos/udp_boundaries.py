"""UDP keeps message boundaries, which is why the tutorials say it never "sticks".

Three datagrams sent back to back come out as three recvfrom()s, never glued. The price: a
datagram larger than the buffer is cut to fit and the rest is thrown away (Linux says so with
MSG_TRUNC; Windows raises WinError 10040, the error the tutorial shows). No retransmission,
no ordering across a real network either: UDP fixes sticking by giving up on streams.
"""

import socket


def main() -> dict:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent = [b"hi", b"meinv", b"x" * 3000]
    for datagram in sent:
        sender.sendto(datagram, receiver.getsockname())
    received = []
    for _ in sent:
        data, _ancillary, flags, _address = receiver.recvmsg(1024)
        received.append((len(data), bool(flags & socket.MSG_TRUNC)))
        print(
            f"recvmsg(1024) -> {len(data):4} bytes{'  (truncated: the rest is lost)' if flags & socket.MSG_TRUNC else ''}"
        )
    sender.close()
    receiver.close()
    return {"sent": [len(d) for d in sent], "received": received}


if __name__ == "__main__":
    main()
