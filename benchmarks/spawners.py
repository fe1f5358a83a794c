"""Ways to start a command off an asyncio server's event loop, side by side (issue 13).

    python benchmarks/spawners.py [--count N] [--concurrency C] [--repeat R]

Each way starts `/bin/sh -c true` COUNT times, CONCURRENCY at once, in a new session with
stdout and stderr on pipes read to EOF, as rcmd-server runs a command, in a fresh Python
process of its own. Printed per way: commands a second, CPU per command of the process
(every thread) plus any helper process (not the commands), and the event loop's worst and
99th-percentile stall, seen by a task that sleeps 1 ms in a loop (a stall is time when no
other connection is served). The machine is noisy: the ways run interleaved, R times;
compare within a run.

Ways:
- loop:        Popen on the event loop (rcmd before spawn_in_thread).
- thread1/2:   Popen on one or two threads (rcmd.process.spawn_in_thread, SPAWN_THREADS).
- pgroup2:     thread2 with process_group=0 instead of start_new_session (setpgid for setsid).
- posix_spawn: os.posix_spawn(setsid=True) on two threads; no cwd (posix_spawn has none in
               Python), so it is a lower bound, not a usable way.
- helper:      a pre-forked helper process (forked while small) that starts the commands:
               the pipe ends go to it over a Unix socket (SCM_RIGHTS), it answers the pid and,
               later, the exit status. Its CPU is counted.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import concurrent.futures
import os
import pickle
import socket
import statistics
import struct
import subprocess
import sys
import time

WAYS = ("loop", "thread1", "thread2", "pgroup2", "posix_spawn", "helper")


def cpu_of(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def popen(argv: list[str], out: int, err: int, *, group: bool = False) -> tuple[int, object]:
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
        cwd="/",
        env=dict(os.environ, RCMD_COMMAND_ID="x-1"),
        **({"process_group": 0} if group else {"start_new_session": True}),
    )
    return process.pid, process


def posix_spawn(argv: list[str], out: int, err: int) -> tuple[int, object]:
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            dict(os.environ, RCMD_COMMAND_ID="x-1"),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, out, 1),
                (os.POSIX_SPAWN_DUP2, err, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(devnull)
    return pid, None


def helper_main(sock: socket.socket) -> None:
    """The pre-forked helper: start each request, answer its pid, report each exit."""
    children: dict[int, subprocess.Popen[bytes]] = {}
    pidfds: dict[int, int] = {}
    import selectors

    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                fds = array.array("i")
                message, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_LEN(2 * fds.itemsize))
                if not message:
                    return
                for _level, _type, data in ancdata:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
                argv = pickle.loads(message)
                pid, process = popen(argv, fds[0], fds[1])
                os.close(fds[0])
                os.close(fds[1])
                children[pid] = process  # type: ignore[assignment]
                pidfd = os.pidfd_open(pid)
                pidfds[pidfd] = pid
                selector.register(pidfd, selectors.EVENT_READ)
                sock.sendall(struct.pack("!ii", 0, pid))
            else:
                pidfd = key.fd
                selector.unregister(pidfd)
                os.close(pidfd)
                pid = pidfds.pop(pidfd)
                code = children.pop(pid).wait()
                sock.sendall(struct.pack("!ii", 1, pid) + struct.pack("!i", code))


class Helper:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the helper
            ours.close()
            try:
                helper_main(theirs)
            finally:
                os._exit(0)
        theirs.close()
        self.sock = ours
        self.sock.setblocking(False)
        self.started: asyncio.Queue[asyncio.Future[int]] = asyncio.Queue()
        self.exits: dict[int, asyncio.Future[int]] = {}
        self.buffer = b""
        asyncio.get_running_loop().add_reader(self.sock, self.on_readable)

    def on_readable(self) -> None:
        self.buffer += self.sock.recv(65536)
        while len(self.buffer) >= 8:
            kind, pid = struct.unpack_from("!ii", self.buffer)
            if kind == 0:
                self.buffer = self.buffer[8:]
                self.exits[pid] = asyncio.get_running_loop().create_future()
                self.started.put_nowait(self.exits[pid])
            else:
                if len(self.buffer) < 12:
                    return
                (code,) = struct.unpack_from("!i", self.buffer, 8)
                self.buffer = self.buffer[12:]
                self.exits.pop(pid).set_result(code)

    async def run(self, argv: list[str], out: int, err: int) -> asyncio.Future[int]:
        fds = array.array("i", [out, err])
        self.sock.sendmsg([pickle.dumps(argv)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        return await self.started.get()  # answers come in request order

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock)
        self.sock.close()
        os.waitpid(self.pid, 0)


async def read_to_eof(fd: int) -> None:
    loop = asyncio.get_running_loop()
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_reader(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_reader(fd)


async def wait_exit(pid: int) -> None:
    loop = asyncio.get_running_loop()
    pidfd = os.pidfd_open(pid)
    ready = loop.create_future()
    loop.add_reader(pidfd, ready.set_result, None)
    try:
        await ready
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    os.waitpid(pid, 0)


async def bench(way: str, count: int, concurrency: int) -> tuple[float, float, float, float]:
    loop = asyncio.get_running_loop()
    threads = 1 if way == "thread1" else 2
    executor = concurrent.futures.ThreadPoolExecutor(threads)
    helper = Helper() if way == "helper" else None
    argv = ["/bin/sh", "-c", "true"]

    async def one() -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        exited: asyncio.Future[int] | None = None
        try:
            if way == "loop":
                pid, _ = popen(argv, out_w, err_w)
            elif way == "helper":
                assert helper is not None
                exited = await helper.run(argv, out_w, err_w)
            elif way == "posix_spawn":
                pid, _ = await loop.run_in_executor(executor, posix_spawn, argv, out_w, err_w)
            else:
                pid, _ = await loop.run_in_executor(
                    executor, lambda: popen(argv, out_w, err_w, group=way == "pgroup2")
                )
        finally:
            os.close(out_w)
            os.close(err_w)
        for fd in (out_r, err_r):
            os.set_blocking(fd, False)
        await asyncio.gather(read_to_eof(out_r), read_to_eof(err_r))
        os.close(out_r)
        os.close(err_r)
        if exited is not None:
            await exited
        else:
            await wait_exit(pid)

    async def worker(n: int) -> None:
        for _ in range(n):
            await one()

    stalls: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            stalls.append(time.perf_counter() - start - 0.001)

    await one()  # warm up (threads, helper)
    tick = asyncio.create_task(ticker())
    cpu_before = cpu_of() + (cpu_of(helper.pid) if helper else 0.0)
    start = time.perf_counter()
    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    cpu = cpu_of() + (cpu_of(helper.pid) if helper else 0.0) - cpu_before
    done = True
    await tick
    if helper is not None:
        helper.close()
    executor.shutdown()
    ran = count // concurrency * concurrency
    stalls.sort()
    return ran / elapsed, cpu / ran * 1000, stalls[-1] * 1000, stalls[int(0.99 * (len(stalls) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--way", choices=WAYS, help=argparse.SUPPRESS)  # one way, in a child
    args = parser.parse_args()
    if args.way:
        print(*asyncio.run(bench(args.way, args.count, args.concurrency)))
        return
    results: dict[str, list[list[float]]] = {way: [] for way in WAYS}
    for _ in range(args.repeat):
        for way in WAYS:
            argv = [sys.executable, __file__, "--way", way, "--count", str(args.count)]
            argv += ["--concurrency", str(args.concurrency)]
            out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
            results[way].append([float(x) for x in out.split()])
    print(f"{args.count} x `sh -c true`, {args.concurrency} at once, {args.repeat} runs (median [min-max])")
    print(f"{'way':12} {'cmds/s':>20} {'CPU ms/cmd':>20} {'worst stall ms':>20} {'p99 stall ms':>20}")
    for way, runs in results.items():
        cells = []
        for column in zip(*runs, strict=True):
            cells.append(f"{statistics.median(column):7.2f} [{min(column):.2f}-{max(column):.2f}]")
        print(f"{way:12} " + " ".join(f"{cell:>20}" for cell in cells))


if __name__ == "__main__":
    main()
