"""rcmd beside its references, in one run: throughput, memory, latency, concurrency.

    make bench                      # or: python benchmarks/bench.py [--quick]

Every figure is a median (or a percentile) from this run, next to a reference measured in
this same run, because these machines are noisy: compare the ratios. Every server and child
started here is stopped before the script ends, and every section is bounded in count.

References:
- relay limit: the same bytes relayed child -> pipe -> Python -> loopback TCP -> Python with
  4-byte frames and no other protocol (a tiny server written below, in its own process).
- tutorial design: socketserver, the whole output read into memory, struct.pack('i'), and a
  client doing data += recv(1024). Quadratic, so it runs on far less data.
- local spawn: the same command run here, on pipes in a new session as the server runs it,
  through rcmd's own spawner (the floor for latency, the ceiling for commands per second),
  and through asyncio's subprocess for comparison.
- ssh to a private sshd started here on 127.0.0.1 with throwaway keys, where sshd is
  installed (the rows say why they are skipped otherwise).

Concurrency is driven by a one-thread load generator on the sans-I/O core, then by
rcmd.connect() in threads.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import platform
import re
import resource
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import rcmd
from rcmd.framing import NEED_DATA
from rcmd.messages import Exit, Hello, Run, Stderr, Stdout
from rcmd.process import spawn_in_thread
from rcmd.protocol import Connection, Role

MiB = 1 << 20

RELAY_SERVER = r"""
import socket, struct, subprocess, sys
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    command = conn.recv(4096).decode()
    child = subprocess.Popen(["/bin/sh", "-c", command], stdout=subprocess.PIPE)
    try:
        import fcntl
        fcntl.fcntl(child.stdout.fileno(), 1031, 1 << 20)  # the 1 MiB pipe rcmd uses (F_SETPIPE_SZ)
    except OSError:
        pass
    while chunk := child.stdout.read1(256 * 1024):
        conn.sendall(struct.pack("!I", len(chunk)) + chunk)
    conn.sendall(struct.pack("!I", 0))
    child.wait()
    conn.close()
"""

TUTORIAL_SERVER = r"""
import socketserver, struct, subprocess
class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        command = self.request.recv(1024).decode()
        result = subprocess.run(command, shell=True, capture_output=True)  # all in memory
        output = result.stdout + result.stderr
        self.request.sendall(struct.pack("i", len(output)))
        self.request.sendall(output)
socketserver.TCPServer.allow_reuse_address = True
server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


#: The asyncssh server as its documentation shows one running a command: a subprocess whose
#: output is copied to the channel as it comes. In-process keys, no authentication: it only
#: listens on 127.0.0.1, for this run. The asyncssh and paramiko rows are its clients.
ASYNCSSH_SERVER = r"""
import asyncio, asyncssh

class NoAuth(asyncssh.SSHServer):
    def begin_auth(self, username):
        return False

async def handle(process):
    local = await asyncio.create_subprocess_shell(
        process.command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, start_new_session=True)
    async def copy(source, channel):
        while data := await source.read(256 * 1024):
            channel.write(data)
            await channel.drain()
    await asyncio.gather(copy(local.stdout, process.stdout), copy(local.stderr, process.stderr))
    process.exit(await local.wait())

async def main():
    key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.listen("127.0.0.1", 0, server_host_keys=[key], server_factory=NoAuth,
                                   process_factory=handle, encoding=None)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()

asyncio.run(main())
"""


def missing(*modules: str) -> str | None:
    """Why the peer rows cannot run: "not installed" unless every module imports."""
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            return f"skipped: not installed ({module}: pip install -e '.[bench]')"
    return None


class AsyncsshClient:
    """One asyncssh connection to *port*, driven from this thread by its own event loop."""

    def __init__(self, port: int) -> None:
        import asyncssh

        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(
            asyncssh.connect("127.0.0.1", port, known_hosts=None, username="bench", encoding=None)
        )

    def run(self, command: str) -> bytes:
        return self.loop.run_until_complete(self.conn.run(command)).stdout

    def lines(self, command: str, clock: LineClock) -> None:
        async def follow() -> None:
            async with self.conn.create_process(command) as process:
                while data := await process.stdout.read(65536):
                    clock.feed(data)

        self.loop.run_until_complete(follow())

    def count(self, command: str) -> int:
        async def count() -> int:
            total = 0
            async with self.conn.create_process(command) as process:
                while data := await process.stdout.read(256 * 1024):
                    total += len(data)
            return total

        return self.loop.run_until_complete(count())

    def close(self) -> None:
        self.conn.close()
        self.loop.run_until_complete(self.conn.wait_closed())
        self.loop.close()


class ParamikoClient:
    """One paramiko transport to *port* (the asyncssh server: no authentication), a channel
    per command as exec_command() opens one."""

    def __init__(self, port: int) -> None:
        import paramiko

        sock = socket.create_connection(("127.0.0.1", port))
        # paramiko leaves Nagle on: each small request then waits for the peer's delayed ACK
        # (about 40 ms a command here). A careful user turns it off, as asyncssh and rcmd do.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport = paramiko.Transport(sock)
        self.transport.start_client()
        self.transport.auth_none("bench")

    def _each(self, command: str, size: int = 256 * 1024):
        channel = self.transport.open_session()
        channel.exec_command(command)
        while data := channel.recv(size):
            yield data
        channel.recv_exit_status()
        channel.close()

    def run(self, command: str) -> bytes:
        return b"".join(self._each(command))

    def lines(self, command: str, clock: LineClock) -> None:
        for data in self._each(command, 65536):
            clock.feed(data)

    def count(self, command: str) -> int:
        return sum(map(len, self._each(command)))

    def close(self) -> None:
        self.transport.close()


def peer_clients(port: int) -> dict[str, AsyncsshClient | ParamikoClient | str]:
    """An open asyncssh and paramiko client to the asyncssh server on *port*, or why not."""
    return {
        "asyncssh": missing("asyncssh") or AsyncsshClient(port),
        "paramiko": missing("paramiko") or ParamikoClient(port),
    }


def asyncssh_server() -> Process | str:
    reason = missing("asyncssh")
    return reason if reason else Process([sys.executable, "-c", ASYNCSSH_SERVER])


class Process:
    """A helper server in a subprocess that prints its port first; stopped on exit."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # rcmd-server's "listening on HOST:PORT", or a bare port
        match = re.search(r"listening on [^ ]+:(\d+)", line) or re.match(r"(\d+)", line)
        self.port = int(match.group(1))

    def memory_kib(self, field: str) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *exc_info) -> None:
        stop(self.proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s; reaped either way."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class SshServer:
    """A private sshd on 127.0.0.1 with throwaway keys, for the ssh rows; stopped on exit.

    Raises Unavailable (with the reason) where none can be started: no sshd installed, or
    sshd refusing to run here.
    """

    class Unavailable(Exception):
        pass

    def __init__(self) -> None:
        sshd = shutil.which("sshd") or next(
            (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None
        )
        if sshd is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
            raise self.Unavailable("no sshd installed (Debian: openssh-server)")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self.dir = tempfile.TemporaryDirectory(prefix="rcmd-bench-ssh-")
        d = Path(self.dir.name)
        for name in ("host", "user"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
        (d / "authorized_keys").write_bytes((d / "user.pub").read_bytes())
        with socket.socket() as probe:  # sshd cannot report a port 0 choice; take a free one
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (d / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {self.port}\nHostKey {d / 'host'}\n"
            f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\nSubsystem sftp internal-sftp\n"
        )
        self.proc = subprocess.Popen(
            [sshd, "-D", "-e", "-f", str(d / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.argv = [
            "ssh",
            "-F",
            "/dev/null",
            "-T",
            "-p",
            str(self.port),
            "-i",
            str(d / "user"),
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"{getpass.getuser()}@127.0.0.1",
        ]
        deadline = time.monotonic() + 10
        while True:  # sshd gives no sign of being ready but accepting connections
            if self.proc.poll() is not None:
                reason = self.proc.stderr.read().strip().splitlines()
                self.dir.cleanup()
                raise self.Unavailable(
                    f"sshd would not start: {reason[-1] if reason else self.proc.returncode}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise self.Unavailable("sshd did not listen within 10 s") from None
                time.sleep(0.01)
        self.cipher = (
            subprocess.run(["ssh", "-G", "-F", "/dev/null", "127.0.0.1"], capture_output=True, text=True)
            .stdout.split("ciphers ", 1)[1]
            .split(",", 1)[0]
        )

    def run(self, command: str, stdout=None) -> None:
        subprocess.run([*self.argv, command], stdin=subprocess.DEVNULL, stdout=stdout, check=True)

    def __enter__(self) -> SshServer:
        return self

    def __exit__(self, *exc_info) -> None:
        stop(self.proc)
        self.dir.cleanup()


def ssh_server() -> SshServer | str:
    """An SshServer, or why there is none."""
    try:
        return SshServer()
    except SshServer.Unavailable as exc:
        return str(exc)


#: The event loop rcmd-server runs on here: "asyncio", or "uvloop" (--loop; the [bench] extra).
SERVER_LOOP = "asyncio"


def rcmd_server(*args: str) -> Process:
    install = "import uvloop; uvloop.install(); " if SERVER_LOOP == "uvloop" else ""
    return Process(
        [
            sys.executable,
            "-c",
            f"{install}from rcmd.cli import server_entry; server_entry()",
            "--port",
            "0",
            "--log-level",
            "error",
            *args,
        ]
    )


def median_time(fn, rounds: int, expect: int | None = None) -> float:
    """The median seconds of *rounds* calls of *fn*; each must return *expect*, if given
    (the bytes a bulk path delivered: a path that loses data has no speed worth printing)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
        if expect is not None and result != expect:
            raise AssertionError(f"{fn} delivered {result} bytes, not {expect}")
    return statistics.median(times)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# ----------------------------------------------------------------------------- bulk


def relay_read(port: int, command: str) -> int:
    total = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(command.encode())
        buffer = bytearray(256 * 1024 + 4)
        view = memoryview(buffer)
        pending = b""
        while True:
            n = sock.recv_into(view)
            if not n:
                return total
            data = pending + view[:n].tobytes() if pending else view[:n]
            offset = 0
            while len(data) - offset >= 4:
                (length,) = struct.unpack_from("!I", data, offset)
                if length == 0:
                    return total
                if len(data) - offset - 4 < length:
                    break
                total += length
                offset += 4 + length
            pending = bytes(data[offset:])


def tutorial_read(port: int, command: str) -> int:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.send(command.encode())
        (length,) = struct.unpack("i", sock.recv(4))
        data = b""
        while len(data) < length:
            data += sock.recv(1024)  # as taught: quadratic
        return len(data)


def api_read(address, command: str) -> int:
    total = 0
    with rcmd.connect(*address) as client:
        for event in client.stream(command):
            if isinstance(event, rcmd.Stdout):
                total += len(event.data)
    return total


def api_write(address, path: str) -> int:
    """The file at *path* as the stdin of `cat > /dev/null`, sent as `rcmd -c ... < FILE`
    sends it (stdin_source); the bytes it holds, once the command has taken them all."""
    with rcmd.connect(*address) as client, open(path, "rb") as f:
        exit = client.stream("cat > /dev/null", stdin_source=f.fileno()).wait()
    if exit.returncode != 0:
        raise AssertionError(f"cat > /dev/null: {exit}")
    return os.path.getsize(path)


UPLOAD = "rcmd API: stdin into `cat > /dev/null`"

#: Child Pythons run as an installed rcmd does, with bytecode caches (some machines turn them off).
CHILD_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def rcmd_program() -> list[str]:
    """``rcmd`` as users run it: the console script installed beside this Python (whose
    ``import re`` json makes anyway); ``python -m rcmd`` where there is none, which adds
    runpy's own imports (5% more instructions for rcmd installed from a wheel)."""
    script = Path(sys.executable).with_name("rcmd")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rcmd"]


def cli_read(address, command: str) -> None:
    with open(os.devnull, "wb") as sink:
        subprocess.run(
            [*rcmd_program(), f"{address[0]}:{address[1]}", "-c", command],
            stdout=sink,
            check=True,
            env=CHILD_ENV,
        )


def bench_bulk(mib: int, tutorial_mib: int, rounds: int) -> list[tuple]:
    """Bulk output through each path against the framed relay's; and the same bytes uploaded
    through the API, against its download (the goal: >= 0.9x)."""
    command = f"head -c {mib * MiB} /dev/zero"
    rows = []
    with (
        Process([sys.executable, "-c", RELAY_SERVER]) as relay,
        rcmd_server() as server,
        tempfile.NamedTemporaryFile(prefix="rcmd-bench-upload-") as upload,
    ):
        for _ in range(mib):
            upload.write(bytes(MiB))
        upload.flush()
        address = ("127.0.0.1", server.port)
        paths = {
            "framed relay limit (reference)": (lambda: relay_read(relay.port, command), mib * MiB),
            "rcmd API: stream()": (lambda: api_read(address, command), mib * MiB),
            UPLOAD: (lambda: api_write(address, upload.name), mib * MiB),
            "rcmd CLI: rcmd -c > /dev/null": (lambda: cli_read(address, command), None),
            "start-up": (lambda: cli_read(address, "true"), None),
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):  # interleaved, so that a slow spell of the machine hits all alike
            for name, (fn, expect) in paths.items():
                times[name].append(median_time(fn, 1, expect))
        medians = {name: statistics.median(values) for name, values in times.items()}
        limit = medians["framed relay limit (reference)"]
        for name in list(paths)[:4]:
            rows.append((name, mib, medians[name], limit / medians[name]))
        down_up = medians["rcmd API: stream()"] / medians[UPLOAD]
        rows.insert(3, ("  upload / download (API)", None, None, f"{down_up:.2f}x (goal: >= 0.9x)"))
        # The CLI's streaming alone: its time less that of a whole `rcmd -c true`.
        streaming = medians["rcmd CLI: rcmd -c > /dev/null"] - medians["start-up"]
        if streaming > 0:
            rows.append(("  the same less its start-up", mib, streaming, limit / streaming))
        else:
            rows.append(("  the same less its start-up", None, None, "start-up is all of it at this size"))
    peer_server = asyncssh_server()
    if isinstance(peer_server, str):
        rows += [(name, None, None, peer_server) for name in ("asyncssh", "paramiko")]
    else:
        with peer_server:
            for name, peer in peer_clients(peer_server.port).items():
                if isinstance(peer, str):
                    rows.append((name, None, None, peer))
                    continue
                seconds = median_time(lambda peer=peer: peer.count(command), min(rounds, 3), mib * MiB)
                peer.close()
                rows.append((name, mib, seconds, limit / seconds))
    with Process([sys.executable, "-c", TUTORIAL_SERVER]) as tutorial:
        small = f"head -c {tutorial_mib * MiB} /dev/zero"
        seconds = median_time(lambda: tutorial_read(tutorial.port, small), min(rounds, 3), tutorial_mib * MiB)
        rows.append(
            (
                "tutorial design (data += recv)",
                tutorial_mib,
                seconds,
                (limit / mib) / (seconds / tutorial_mib),
            )
        )
    ssh = ssh_server()
    if isinstance(ssh, str):
        rows.append(("ssh to 127.0.0.1", None, None, f"skipped: {ssh}"))
        return rows
    with ssh, open(os.devnull, "wb") as sink:
        seconds = median_time(lambda: ssh.run(command, stdout=sink), min(rounds, 3))
        rows.append((f"ssh 127.0.0.1, {ssh.cipher.split('@')[0]}", mib, seconds, limit / seconds))
    return rows


# ----------------------------------------------------------------------------- memory


def _ssh_copy_argv(ssh: SshServer, program: str) -> list[str]:
    """scp's or sftp's options for the private sshd: ssh's, with -P for the port."""
    options = ssh.argv[1:-1]
    options.remove("-T")
    port = options.index("-p")
    options[port] = "-P"
    return [program, *options, "-q"] if program == "scp" else [program, *options]


def bench_transfers(mib: int, rounds: int) -> list[tuple]:
    """put() and get() of one file against streaming the same bytes through `cat` into a
    file (the goal: >= 0.9x; put and get also hash both ends, put is flushed to disk by the
    server, get only with fsync=True, its own row), and scp and sftp
    where an sshd can be started, against the `cat` download. (name, MiB, seconds, x ref)."""
    rows: list[tuple] = []
    with tempfile.TemporaryDirectory(prefix="rcmd-bench-files-") as folder:
        source = Path(folder) / "source"
        block = os.urandom(MiB)
        with open(source, "wb") as f:
            for _ in range(mib):
                f.write(block)
        size = mib * MiB
        with rcmd_server("--cwd", folder) as server:
            address = ("127.0.0.1", server.port)

            def put() -> int:
                with rcmd.connect(*address) as client:
                    return client.put(source, "uploaded", resume=False).size

            def get(fsync: bool = False) -> int:
                with rcmd.connect(*address) as client:
                    return client.get(
                        str(source), Path(folder) / "downloaded", resume=False, fsync=fsync
                    ).size

            def cat_up() -> int:
                """The same bytes as stdin of `cat > FILE`, as fast as the server takes them."""
                with (
                    rcmd.connect(*address) as client,
                    open(source, "rb") as f,
                    client.stream(f"cat > {folder}/catted", stdin=True) as stream,
                ):
                    while data := f.read(256 * 1024):
                        stream.write_stdin(data)
                        while len(client._outbox) > 4 * 256 * 1024:
                            client._wait_for_io(None)
                    stream.close_stdin()
                    stream.wait()
                return os.path.getsize(Path(folder) / "catted")

            def cat_down() -> int:
                """`cat FILE`, its output written to a local file."""
                with rcmd.connect(*address) as client, open(Path(folder) / "catted-down", "wb") as f:
                    for event in client.stream(f"cat {source}"):
                        if isinstance(event, rcmd.Stdout):
                            f.write(event.data)
                return os.path.getsize(Path(folder) / "catted-down")

            up = median_time(cat_up, rounds, size)
            down = median_time(cat_down, rounds, size)
            measured = [
                ("stdin to `cat > FILE` (reference)", up, up),
                ("rcmd API: put()", median_time(put, rounds, size), up),
                ("`cat FILE` to a file (reference)", down, down),
                ("rcmd API: get()", median_time(get, rounds, size), down),
                ("rcmd API: get(fsync=True)", median_time(lambda: get(fsync=True), rounds, size), down),
            ]
            rows += [(name, mib, seconds, reference / seconds) for name, seconds, reference in measured]
            cat = down
        ssh = ssh_server()
        if isinstance(ssh, str):
            rows.append(("scp / sftp", mib, None, f"skipped: {ssh}"))
            return rows
        with ssh:
            target = f"{getpass.getuser()}@127.0.0.1"
            scp = _ssh_copy_argv(ssh, "scp")
            sftp = _ssh_copy_argv(ssh, "sftp")
            cases = {
                "scp get": [*scp, f"{target}:{source}", str(Path(folder) / "scp-down")],
                "scp put": [*scp, str(source), f"{target}:{Path(folder) / 'scp-up'}"],
                "sftp get": [*sftp, "-b", "-", target],
            }
            for name, argv in cases.items():
                batch = f"get {source} {Path(folder) / 'sftp-down'}\n" if name.startswith("sftp") else None

                def copy(argv: list[str] = argv, batch: str | None = batch) -> None:
                    subprocess.run(argv, input=batch, text=True, stdout=subprocess.DEVNULL, check=True)

                seconds = median_time(copy, rounds)
                rows.append((f"{name} ({ssh.cipher})", mib, seconds, cat / seconds))
    return rows


def bench_memory(stream_mib: int, idle: int) -> list[tuple]:
    rows = []
    with rcmd_server() as server:
        before = server.memory_kib("VmRSS")
        api_read(("127.0.0.1", server.port), f"head -c {stream_mib * MiB} /dev/zero")
        rows.append((f"server peak RSS streaming {stream_mib} MiB", before, server.memory_kib("VmHWM")))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * idle + 256)), hard))
    with rcmd_server("--max-connections", str(idle + 10)) as server:
        before = server.memory_kib("VmRSS")
        clients = [rcmd.connect("127.0.0.1", server.port) for _ in range(idle)]
        assert clients[-1].run("true").returncode == 0  # the last one is fully served
        rows.append((f"server RSS with {idle} idle connections", before, server.memory_kib("VmRSS")))
        for client in clients:
            client.close()
    return rows


# ---------------------------------------------------------------------------- latency


async def local_spawns(count: int, concurrency: int, how: str = "rcmd") -> list[float]:
    """Seconds each of *count* local runs of `true` took, *concurrency* at a time, with its
    stdout and stderr on pipes read to the end and in a new session, as the server runs
    commands: through rcmd's own spawner (*how* "rcmd", the floor and ceiling: what is left
    is rcmd's protocol and network), or asyncio's subprocess ("asyncio", for comparison)."""
    times: list[float] = []

    async def run_rcmd() -> None:
        child = await spawn_in_thread("true", shell="/bin/sh", cwd=os.getcwd(), env=None, stdin=False)
        try:
            await child.communicate()
        finally:
            child.close()

    async def run_asyncio() -> None:
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            "true",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        await process.communicate()

    one = run_rcmd if how == "rcmd" else run_asyncio

    async def worker(n: int) -> None:
        for _ in range(n):
            start = time.perf_counter()
            await one()
            times.append(time.perf_counter() - start)

    await asyncio.gather(*(worker(count // concurrency) for _ in range(concurrency)))
    return times


def peer_latency(count: int, floor: float) -> list[tuple]:
    """`true` on an open asyncssh and paramiko connection (to the asyncssh server)."""
    server = asyncssh_server()
    if isinstance(server, str):
        return [
            (f"{name}: run('true') on an open connection", None, None, server)
            for name in ("asyncssh", "paramiko")
        ]
    rows = []
    with server:
        for name, peer in peer_clients(server.port).items():
            label = f"{name}: run('true') on an open connection"
            if isinstance(peer, str):
                rows.append((label, None, None, peer))
                continue
            times = []
            for _ in range(count):
                start = time.perf_counter()
                peer.run("true")
                times.append(time.perf_counter() - start)
            peer.close()
            rows.append((label, percentile(times, 50), percentile(times, 99), percentile(times, 50) / floor))
    return rows


def bench_latency(count: int) -> list[tuple]:
    floor = asyncio.run(local_spawns(count, 1))
    stdlib = asyncio.run(local_spawns(count, 1, "asyncio"))
    with rcmd_server() as server:
        times = []
        echo: list[float] = []
        with rcmd.connect("127.0.0.1", server.port) as client:
            for _ in range(count):
                start = time.perf_counter()
                client.run("true")
                times.append(time.perf_counter() - start)
            for _ in range(count):  # output, then EXIT right behind it: two frames a command
                start = time.perf_counter()
                client.run("echo hi")
                echo.append(time.perf_counter() - start)
        whole = [median_time(lambda: cli_read(("127.0.0.1", server.port), "true"), 1) for _ in range(10)]
    # With rcmd installed editable (pip install -e, as make bench's venv has it), site runs its
    # finder, which imports pathlib, re, enum and more before `pass`: the floor is then ~2x a
    # plain Python's, and it includes imports that rcmd installed from a wheel pays itself.
    python = median_time(
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=True, env=CHILD_ENV), 10
    )
    rows = [
        ("local spawn of `true` (floor)", percentile(floor, 50), percentile(floor, 99), 1.0),
        (
            "  the same through asyncio's subprocess",
            percentile(stdlib, 50),
            percentile(stdlib, 99),
            percentile(stdlib, 50) / percentile(floor, 50),
        ),
        (
            "rcmd: run('true') on an open connection",
            percentile(times, 50),
            percentile(times, 99),
            percentile(times, 50) / percentile(floor, 50),
        ),
        (
            "rcmd: run('echo hi') (x the `true` floor)",
            percentile(echo, 50),
            percentile(echo, 99),
            percentile(echo, 50) / percentile(floor, 50),
        ),
        ("`python -c pass` (start-up floor)", python, None, 1.0),
        (
            "whole `rcmd -c true` (client start-up too)",
            statistics.median(whole),
            max(whole),
            statistics.median(whole) / python,
        ),
    ]
    rows += peer_latency(count, percentile(floor, 50))
    ssh = ssh_server()
    if isinstance(ssh, str):
        return [*rows, ("whole `ssh 127.0.0.1 true`", None, None, f"skipped: {ssh}")]
    with ssh:
        whole_ssh = [median_time(lambda: ssh.run("true"), 1) for _ in range(10)]
    return [
        *rows,
        (
            "whole `ssh 127.0.0.1 true`",
            statistics.median(whole_ssh),
            max(whole_ssh),
            statistics.median(whole_ssh) / python,
        ),
    ]


# ----------------------------------------------------------------------- line latency


def lines_command(count: int) -> str:
    """A command printing *count* lines 20 ms apart, each the CLOCK_MONOTONIC time it was
    printed at (in ns: the same clock here, so the delay is this time less that one).
    Each line is one write(): print() under -u writes the number and the newline apart,
    and a reader woken between the two paid a second trip for the same line."""
    return (
        f"{sys.executable} -c 'import os, time\n"
        f'for _ in range({count}):\n    os.write(1, b"%d\\n" % time.monotonic_ns())\n    time.sleep(0.02)\''
    )


class LineClock:
    """Delays, in seconds, from each line's print (the time it carries) to its arrival here."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._partial = b""

    def feed(self, data: bytes) -> None:
        now = time.monotonic_ns()
        *lines, self._partial = (self._partial + bytes(data)).split(b"\n")
        self.delays.extend((now - int(line)) / 1e9 for line in lines)


def relay_lines(port: int, command: str, clock: LineClock) -> None:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(command.encode())
        pending = b""
        while data := sock.recv(65536):
            pending += data
            while len(pending) >= 4:
                (length,) = struct.unpack_from("!I", pending)
                if length == 0:
                    return
                if len(pending) < 4 + length:
                    break
                clock.feed(pending[4 : 4 + length])
                pending = pending[4 + length :]


def bare_lines(port: int, command: str, clock: LineClock) -> None:
    """The command's output through rcmd-server to the least client there can be: blocking
    recv() into rcmd's sans-I/O core, as the relay's client reads. Its delay less the
    relay's is the server's share; the API's less this one, the client's."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Connection(Role.CLIENT)
        while conn.next_event() is NEED_DATA:  # the server's HELLO
            conn.receive_data(sock.recv(65536))
        sock.sendall(conn.send(Hello(software="bench")) + conn.send(Run(command)))
        while True:
            conn.receive_data(sock.recv(65536))
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, Stdout):
                    clock.feed(event.data)
                elif isinstance(event, Exit):
                    return
                elif not isinstance(event, Stderr):
                    raise RuntimeError(f"the server said {event!r}")


def bench_lines(count: int, rounds: int) -> list[tuple]:
    """Print-to-client delay of lines printed 20 ms apart: rcmd beside a bare relay (the
    same tiny framed relay as the bulk rows), its peers and ssh. Rows: name, p50, p99, x relay."""
    command = lines_command(count)
    clocks: dict[str, LineClock] = {}
    with Process([sys.executable, "-c", RELAY_SERVER]) as relay, rcmd_server() as server:
        peer_server = asyncssh_server()
        try:
            paths = {
                "bare relay (reference)": lambda clock: relay_lines(relay.port, command, clock),
            }
            with rcmd.connect("127.0.0.1", server.port) as client:

                def rcmd_lines(clock: LineClock) -> None:
                    for event in client.stream(command):
                        if isinstance(event, rcmd.Stdout):
                            clock.feed(event.data)

                paths["rcmd API: stream()"] = rcmd_lines
                paths["  rcmd-server, sans-I/O client"] = lambda clock: bare_lines(
                    server.port, command, clock
                )
                peers = peer_clients(peer_server.port) if isinstance(peer_server, Process) else {}
                for name in ("asyncssh", "paramiko"):
                    peer = peers.get(name, peer_server)
                    if not isinstance(peer, str):
                        paths[name] = lambda clock, peer=peer: peer.lines(command, clock)
                clocks = {name: LineClock() for name in paths}
                for _ in range(rounds):  # interleaved
                    for name, follow in paths.items():
                        follow(clocks[name])
                for peer in peers.values():
                    if not isinstance(peer, str):
                        peer.close()
        finally:
            if isinstance(peer_server, Process):
                peer_server.__exit__()
    reference = statistics.median(clocks["bare relay (reference)"].delays)
    rows = [
        (
            name,
            statistics.median(clock.delays),
            percentile(clock.delays, 99),
            statistics.median(clock.delays) / reference,
        )
        for name, clock in clocks.items()
    ]
    for name in ("asyncssh", "paramiko"):
        if name not in clocks:
            rows.append((name, None, None, peer_server if isinstance(peer_server, str) else peers[name]))
    ssh = ssh_server()
    if isinstance(ssh, str):
        return [*rows, ("ssh 127.0.0.1", None, None, f"skipped: {ssh}")]
    with ssh:
        clock = LineClock()
        for _ in range(rounds):
            with subprocess.Popen(
                [*ssh.argv, command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
            ) as proc:
                while data := proc.stdout.read1(65536):
                    clock.feed(data)
    p50 = statistics.median(clock.delays)
    return [
        *rows,
        ("ssh 127.0.0.1 (a fresh connection each round)", p50, percentile(clock.delays, 99), p50 / reference),
    ]


# ------------------------------------------------------------------------ concurrency


class LoadClient:
    """One connection of the load generator: its protocol state and its own count."""

    def __init__(self, port: int, commands: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = Connection(Role.CLIENT)
        while self.conn.next_event() is NEED_DATA:  # the server's HELLO
            self.conn.receive_data(self.sock.recv(65536))
        self.sock.sendall(self.conn.send(Hello(software="bench")))
        self.left = commands
        self.started = 0.0

    def run_true(self) -> None:
        self.started = time.perf_counter()
        self.sock.sendall(self.conn.send(Run("true")))

    def exits(self) -> int:
        """Read what has come; how many EXITs it held (0 or 1: one command at a time)."""
        self.conn.receive_data(self.sock.recv(65536))
        count = 0
        while (event := self.conn.next_event()) is not NEED_DATA:
            if not isinstance(event, (Exit, Stdout, Stderr)):
                raise RuntimeError(f"the server said {event!r}")
            count += isinstance(event, Exit)
        return count


def drive_clients(port: int, clients: int, per_client: int, connected) -> tuple[list[float], float]:
    """*clients* connections at once from one thread, each running `true` *per_client* times.

    A load generator on rcmd's sans-I/O core (rcmd.protocol.Connection) and one selector,
    so that on a 2-core machine the clients take as little CPU from the server as they can:
    500 client threads would spend more than the server does. *connected()* is called once
    all are connected. Returns the latencies, and the seconds from the first RUN to the
    last EXIT.
    """
    selector = selectors.DefaultSelector()
    load = [LoadClient(port, per_client) for _ in range(clients)]
    for client in load:
        selector.register(client.sock, selectors.EVENT_READ, client)
    times: list[float] = []
    connected()
    start = time.perf_counter()
    for client in load:
        client.run_true()
    running = clients
    while running:
        for key, _ in selector.select():
            client = key.data
            if client.exits():
                times.append(time.perf_counter() - client.started)
                client.left -= 1
                if client.left:
                    client.run_true()
                else:
                    running -= 1
                    selector.unregister(client.sock)
                    client.sock.close()
    elapsed = time.perf_counter() - start
    assert len(times) == clients * per_client
    return times, elapsed


def bench_concurrency(clients: int, per_client: int) -> list[tuple]:
    start = time.perf_counter()
    cpu_start = time.process_time()
    ceiling_times = asyncio.run(local_spawns(clients * per_client, clients))
    ceiling = len(ceiling_times) / (time.perf_counter() - start)
    # The spawner's own CPU a command, every thread of this process: the reference for the
    # server's (which spawns the same way, and adds the protocol and the network).
    spawner_cpu = (time.process_time() - cpu_start) / len(ceiling_times) * 1000
    rows = [
        ("local spawns (ceiling)", clients, ceiling, ceiling, 1.0, percentile(ceiling_times, 99), spawner_cpu)
    ]
    with rcmd_server("--max-connections", str(clients + 10), "--max-commands", str(clients)) as server:
        mark = {}

        def connected() -> None:  # connecting is not part of the figure
            mark["cpu"] = server.cpu_seconds()

        times, elapsed = drive_clients(server.port, clients, per_client, connected)
        cpu = server.cpu_seconds() - mark["cpu"]
        rate = len(times) / elapsed
        rows.append(
            (
                "load generator",
                clients,
                rate,
                ceiling,
                rate / ceiling,
                percentile(times, 99),
                cpu / len(times) * 1000,
            )
        )
        connected = threading.Barrier(clients + 1)  # the clients, and this thread
        go = threading.Event()
        times = []
        lock = threading.Lock()

        def one() -> None:
            with rcmd.connect("127.0.0.1", server.port) as client:
                connected.wait()
                go.wait()
                for _ in range(per_client):
                    t = time.perf_counter()
                    client.run("true")
                    with lock:
                        times.append(time.perf_counter() - t)

        threads = [threading.Thread(target=one) for _ in range(clients)]
        for thread in threads:
            thread.start()
        connected.wait()
        cpu_before = server.cpu_seconds()
        start = time.perf_counter()
        go.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        cpu = server.cpu_seconds() - cpu_before
    assert len(times) == clients * per_client
    rate = len(times) / elapsed
    rows.append(
        (
            "rcmd.connect() threads",
            clients,
            rate,
            ceiling,
            rate / ceiling,
            percentile(times, 99),
            cpu / len(times) * 1000,
        )
    )
    return rows


# ------------------------------------------------------------------------------- main


SECTIONS = ("bulk", "transfers", "memory", "latency", "lines", "concurrency")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and counts (about 16 s)")
    parser.add_argument(
        "--only",
        action="append",
        choices=SECTIONS,
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop rcmd-server runs on (uvloop: pip install uvloop, or the [bench] extra)",
    )
    args = parser.parse_args()
    q = args.quick
    only = set(args.only or SECTIONS)
    global SERVER_LOOP
    SERVER_LOOP = args.loop
    print(
        f"rcmd {rcmd.__version__} bench: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, server on {args.loop}"
    )

    rounds = 3 if q else 5
    if "bulk" in only:
        print(f"\nBulk output (`head -c N /dev/zero`), median of {rounds}")
        print(f"{'path':38} {'MiB':>6} {'seconds':>8} {'MB/s':>7} {'x limit':>8}")
        for name, mib, seconds, ratio in bench_bulk(256 if q else 1024, 4 if q else 8, rounds):
            if seconds is None:
                print(f"{name:38} {ratio}")
            else:
                print(f"{name:38} {mib:6} {seconds:8.3f} {mib * MiB / seconds / 1e6:7.0f} {ratio:8.2f}")

    if "transfers" in only:
        print(f"\nFile transfers (one file, new connection each), median of {rounds}")
        print(f"{'path':38} {'MiB':>6} {'seconds':>8} {'MB/s':>7} {'x ref':>8}")
        for name, mib, seconds, ratio in bench_transfers(256 if q else 1024, rounds):
            if seconds is None:
                print(f"{name:38} {ratio}")
            else:
                print(f"{name:38} {mib:6} {seconds:8.3f} {mib * MiB / seconds / 1e6:7.0f} {ratio:8.2f}")

    if "memory" in only:
        print("\nServer memory")
        print(f"{'case':44} {'before':>9} {'after/peak':>11}")
        for name, before, after in bench_memory(512 if q else 2048, 200 if q else 1000):
            print(f"{name:44} {before / 1024:7.1f}MB {after / 1024:9.1f}MB")

    if "latency" in only:
        print("\nLatency of `true`")
        print(f"{'path':44} {'p50 ms':>8} {'p99 ms':>8} {'x floor':>8}")
        for name, p50, p99, ratio in bench_latency(100 if q else 500):
            if p50 is None:
                print(f"{name:44} {ratio}")
                continue
            p99_text = f"{p99 * 1000:8.2f}" if p99 is not None else f"{'':8}"
            print(f"{name:44} {p50 * 1000:8.2f} {p99_text} {ratio:8.2f}")

    if "lines" in only:
        count, line_rounds = (25, 2) if q else (50, 3)
        print(
            f"\nLine latency: a command printing a line every 20 ms, {count} lines x {line_rounds}, print to client"
        )
        print(f"{'path':44} {'p50 ms':>8} {'p99 ms':>8} {'x relay':>8}")
        for name, p50, p99, ratio in bench_lines(count, line_rounds):
            if p50 is None:
                print(f"{name:44} {ratio}")
            else:
                print(f"{name:44} {p50 * 1000:8.3f} {p99 * 1000:8.3f} {ratio:8.2f}")

    if "concurrency" in only:
        print(
            "\nConcurrency: clients each running `true` in a loop; ceiling: local spawns as many at once\n"
            "(CPU: the server's a command, every thread; for the ceiling, the spawning process's)"
        )
        print(
            f"{'clients from':24} {'clients':>7} {'cmds/s':>8} {'ceiling':>8} {'x ceil':>7} {'p99 ms':>8} {'CPU ms/cmd':>11}"
        )
        for count in (50,) if q else (50, 500):
            for name, clients, rate, ceiling, ratio, p99, cpu in bench_concurrency(
                count, 8 if count > 100 else 40
            ):
                print(
                    f"{name:24} {clients:7} {rate:8.0f} {ceiling:8.0f} {ratio:7.2f} {p99 * 1000:8.1f} {cpu:11.3f}"
                )


if __name__ == "__main__":
    main()
