"""The reader's short read: one sendall() of 100 KiB is not one recv() of 100 KiB.

recv(n) returns what has arrived so far, up to n bytes, never "the message". Here the second
half is held back until the first recv() is done, so the short read happens every run; on a
real network it happens whenever it likes. rcmd's LengthPrefixFramer keeps the parts until
the frame is whole.
"""

import socket
import threading

import rcmd


def main() -> dict:
    message = bytes(range(256)) * 400  # 102,400 bytes
    frame = rcmd.encode_frame(message)
    listener = socket.create_server(("127.0.0.1", 0))
    first_recv_done = threading.Event()

    def send() -> None:
        with socket.create_connection(listener.getsockname()) as sender:
            sender.sendall(frame[: len(frame) // 2])
            first_recv_done.wait(10)
            sender.sendall(frame[len(frame) // 2 :])

    threading.Thread(target=send).start()
    reader, _ = listener.accept()
    first = reader.recv(len(frame))  # asks for the whole frame at once...
    first_recv_done.set()
    framer, reads = rcmd.LengthPrefixFramer(), [len(first)]
    framer.receive_data(first)
    while (payload := framer.next_frame()) is rcmd.NEED_DATA:
        data = reader.recv(65536)
        reads.append(len(data))
        framer.receive_data(data)
    reader.close()
    listener.close()
    print(f"sent one {len(frame):,}-byte frame; one recv({len(frame):,}) returned {len(first):,} bytes")
    print(f"the framer needed {len(reads)} reads {reads} and got the message intact: {payload == message}")
    return {"first_recv": len(first), "frame": len(frame), "reads": reads, "intact": payload == message}


if __name__ == "__main__":
    main()
