"""A hostile soak on loopback: does one client stall the others, and does anything pile up?

    python benchmarks/soak.py --quick          # about 40 s (10 s of attack)
    python benchmarks/soak.py                  # a few minutes at most
    python benchmarks/soak.py --server-path DIR   # the server from another checkout's code

Against a server subprocess (and a TLS one, if trustme is installed), in phases:

1. idle: an honest client runs ``true`` in a loop alone: its latency when nobody attacks.
2. attack: hostile clients push max-size frames (a 1 MiB ``cd`` line, a 1 MiB junk frame),
   floods of small messages (a MiB of PINGs, each answered), random garbage, slowloris (a
   byte a second, far more of them than --max-connections), connect-and-reset, and TLS
   connect-and-reset, while the honest client goes on.
2c. newcomers: new clients one after another, each connecting and running ``true``, while
   slowloris sockets hold the startups: how long a client waits to get in during a flood.
3. cycles: connect / run / close, half of them leaving while their command still runs,
   for the memory a departed client leaves behind.
4. lockout: 1,000 sockets that say HELLO and then nothing, held open; how long until a new
   honest client gets a command through.

Before the phases, the costliest 1 MiB RUNs we know of (tiny values by the hundred thousand,
escapes, a ``cd`` line) go through the sans-I/O path the server runs on its event loop for
each message (decode, check, refusal, ``cd``): the worst is a row of the table.

Then one table: inputs tried, unhandled exceptions in the server's log, RSS, descriptors,
processes left, and the honest client's latency. Every count and phase is bounded; every
server and socket started here is closed before the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rcmd
from rcmd.framing import encode_frame
from rcmd.messages import Hello, Ping, Run, encode_message
from rcmd.protocol import Connection, Role

MiB = 1 << 20
HELLO = encode_frame(encode_message(Hello()))
LINGER_ZERO = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # close() sends RST, not FIN
#: A ``cd`` line as large as a frame may be: the server parses it before it runs anything.
CD_FRAME = encode_frame(encode_message(Run("cd " + "'x' " * ((MiB - 64) // 4))))
JUNK_FRAME = (MiB - 4).to_bytes(4, "big") + b"\x10" + os.urandom(MiB - 5)
#: A frame limit of PINGs: each is answered, and the input never runs dry.
PING_FLOOD = encode_frame(encode_message(Ping())) * (MiB // 5)
UNHANDLED = re.compile(r"Task exception was never retrieved|Traceback|Exception in callback")


class ServerUnderTest:
    """``rcmd-server --port 0`` in a subprocess, its log in a file, its vital signs from /proc."""

    def __init__(self, log_dir: Path, name: str, server_path: str | None, *args: str) -> None:
        self.log_path = log_dir / f"{name}.log"
        env = dict(os.environ)
        if server_path:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [server_path, env.get("PYTHONPATH")]))
        argv = [sys.executable, "-c", "from rcmd.cli import server_entry; server_entry()"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*argv, "--port", "0", *args],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=log_dir,  # not ours: `python -c` puts its cwd first on sys.path
            )
        assert self.proc.stdout is not None
        banner = self.proc.stdout.readline().decode()
        match = re.search(r"listening on (\S+):(\d+)", banner)
        if not match:
            self.stop()
            raise SystemExit(f"{name} server did not start:\n{self.log_path.read_text()[-2000:]}")
        self.address = (match.group(1), int(match.group(2)))
        self.rss_start = self.rss()
        self.fds_start = self.fds()

    def rss(self, field: str = "VmRSS") -> int:
        """KiB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(rf"^{field}:\s+(\d+) kB", status, re.M)
        return int(found.group(1)) if found else 0

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def children(self) -> int:
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return len(path.read_text().split())

    def unhandled(self) -> int:
        return len(UNHANDLED.findall(self.log_path.read_text(errors="replace")))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()


@dataclass
class Latencies:
    samples: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def row(self) -> str:
        if not self.samples:
            return "no command completed"
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return (
            f"p50 {statistics.median(ordered) * 1e3:7.1f} ms  p99 {p99 * 1e3:7.1f} ms  "
            f"max {ordered[-1] * 1e3:7.1f} ms  (n={len(ordered)}, errors {len(self.errors)})"
        )

    def p99(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("inf")


def honest_loop(address: tuple[str, int], out: Latencies, limit: int, seconds: float) -> None:
    """Run ``true`` *limit* times or for *seconds*, reconnecting if the server drops us."""
    client = None
    deadline = time.monotonic() + seconds
    while len(out.samples) < limit and time.monotonic() < deadline:
        try:
            if client is None:
                client = rcmd.connect(*address, connect_timeout=30)
            started = time.perf_counter()
            result = client.run("true")
            out.samples.append(time.perf_counter() - started)
            if result.returncode != 0:
                out.errors.append(f"exit {result.returncode}")
        except (rcmd.RcmdError, OSError) as exc:
            out.errors.append(str(exc))
            if client is not None:
                client.close()
            client = None
    if client is not None:
        client.close()


def honest_process(address: tuple[str, int], seconds: float) -> subprocess.Popen[str]:
    """The honest client in a process of its own: in a thread here it would wait for this
    process's GIL, and the figures would measure the attackers, not the server."""
    return subprocess.Popen(
        [sys.executable, __file__, "--honest", f"{address[0]}:{address[1]}", "--seconds", str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )


def honest_main(target: str, seconds: float) -> int:
    host, port = target.rsplit(":", 1)
    out = Latencies()
    honest_loop((host, int(port)), out, 10**9, seconds)
    print(json.dumps({"samples": out.samples, "errors": out.errors}))
    return 0


# ------------------------------------------------------------------ costly messages


def costly_bodies() -> dict[str, bytes]:
    """RUN bodies of up to a frame limit, each built to make decoding or checking slow."""
    room = MiB - 64

    def body(obj: object) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()

    def unknown(item: bytes) -> bytes:  # a key the server does not know: parsed, then ignored
        return b'{"command":"true","later":[' + b",".join([item] * (room // (len(item) + 1) - 8)) + b"]}"

    return {
        "cd line": body({"command": "cd " + "'x' " * (room // 4 - 2)}),
        "1 string of \\u00e9 escapes": b'{"command":"' + b"\\u00e9" * (room // 6 - 4) + b'"}',
        "1 string of lone surrogates": b'{"command":"' + b"\\ud800" * (room // 6 - 4) + b'"}',
        "1 string of brackets, quotes": body({"command": '[,:{"' * (room // 7)}),
        "env of 80,000 variables": body(
            {"command": "true", "env": {f"{n:x}": "" for n in range(room // 13)}}
        ),
        "300,000 empty lists": unknown(b"[]"),
        "lists nested 31 deep": unknown(b"[" * 30 + b"]" * 30),
        "250,000 floats": unknown(b"1.5"),
        "350,000 empty strings": unknown(b'""'),
        "100,000 tokens, 1 level": unknown(b"[0,0,0,0,0,0,0,0,0,0]"),
    }


def message_cost(body: bytes) -> float:
    """Seconds the server's per-message path takes for a RUN with *body*: framing, decode,
    schema, refusal and ``cd`` (all on its event loop), the best of 5."""
    from rcmd.errors import RemoteProtocolError
    from rcmd.server.cd import parse_cd

    frame = encode_frame(b"\x02" + body)
    best = float("inf")
    for _ in range(5):
        conn = Connection(Role.SERVER, max_frame_size=MiB)
        conn.send(Hello())
        conn.receive_data(HELLO)
        conn.next_event()
        started = time.perf_counter()
        conn.receive_data(frame)
        try:
            run = conn.next_event()
            if isinstance(run, Run) and run.refusal() is None:
                parse_cd(run.command)
        except RemoteProtocolError:
            pass  # refused: the server sends an ERROR and closes
        best = min(best, time.perf_counter() - started)
    return best


def worst_main() -> int:
    costs = {name: message_cost(body) for name, body in costly_bodies().items()}
    text = json.dumps("x" * (MiB - 64)).encode()
    started = time.perf_counter()
    json.loads(text)
    costs["(json.loads of a 1 MiB string alone)"] = time.perf_counter() - started
    print(json.dumps(costs))
    return 0


def worst_messages(server_path: str | None) -> dict[str, float]:
    """message_cost() of each costly body, with the server's code (--server-path)."""
    env = dict(os.environ)
    if server_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [server_path, env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, __file__, "--worst"], capture_output=True, text=True, env=env, timeout=600
    )
    return json.loads(out.stdout) if out.returncode == 0 else {f"failed: {out.stderr[-200:]}": 0.0}


# ------------------------------------------------------------------ hostile clients


class Attack:
    def __init__(
        self, plain: tuple[str, int], tls: tuple[str, int] | None, until: float, budget: int, cd: bool
    ) -> None:
        self.plain, self.tls, self.until, self.budget, self.cd = plain, tls, until, budget, cd
        self.inputs: dict[str, int] = {}
        self.rss_at_1000: int | None = None
        self.on_thousand: list[ServerUnderTest] = []

    def more(self) -> bool:
        return time.monotonic() < self.until and sum(self.inputs.values()) < self.budget

    def count(self, kind: str) -> None:
        self.inputs[kind] = self.inputs.get(kind, 0) + 1
        if sum(self.inputs.values()) == 1000 and self.on_thousand:
            self.rss_at_1000 = self.on_thousand[0].rss()

    async def _exchange(self, address: tuple[str, int], data: bytes, *, reset: bool = False) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), 15)
        except (OSError, asyncio.TimeoutError):
            return
        try:
            if reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO)
                if data:
                    writer.write(data)
                writer.transport.abort()
                return
            writer.write(data)
            await asyncio.wait_for(writer.drain(), 15)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 15)  # until the server closes
        except (OSError, asyncio.TimeoutError):
            pass
        finally:
            writer.transport.abort()

    async def max_frames(self) -> None:
        while self.more():
            cd = self.cd and random.random() < 0.5
            await self._exchange(self.plain, HELLO + (CD_FRAME if cd else JUNK_FRAME))
            self.count("max-size cd line" if cd else "max-size junk frame")

    async def ping_flood(self) -> None:
        """A MiB of PINGs, its PONGs read as they come (so the server never waits on us),
        cut off when the attack's time is up (answering them all can take longer)."""
        while self.more():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.plain), 15)
            except (OSError, asyncio.TimeoutError):
                continue
            try:
                reading = asyncio.ensure_future(reader.read())  # all, until the server closes
                writer.write(HELLO + PING_FLOOD)
                await asyncio.wait_for(writer.drain(), max(0.1, self.until - time.monotonic()))
                writer.write_eof()
                await asyncio.wait_for(reading, max(0.1, self.until - time.monotonic()))
            except (OSError, asyncio.TimeoutError):
                pass
            finally:
                reading.cancel()
                writer.transport.abort()
            self.count("PING flood (1 MiB)")

    async def garbage(self) -> None:
        while self.more():
            data = os.urandom(random.randint(1, 4096))
            if random.random() < 0.5:
                data = HELLO + data
            await self._exchange(self.plain, data)
            self.count("garbage")

    async def resets(self) -> None:
        while self.more():
            await self._exchange(self.plain, HELLO[: random.randint(0, len(HELLO))], reset=True)
            self.count("connect-and-reset")

    async def slowloris(self) -> None:
        while self.more():
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(*self.plain), 15)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(1)
                continue
            self.count("slowloris")
            try:
                for byte in HELLO[:-1] * 100:  # never a whole HELLO: a byte a second
                    if not self.more() or reader.at_eof():
                        break
                    writer.write(bytes([byte]))
                    await writer.drain()
                    try:
                        await asyncio.wait_for(reader.read(65536), 1.0)
                    except asyncio.TimeoutError:
                        pass
            except OSError:
                pass
            finally:
                writer.transport.abort()

    async def tls_resets(self) -> None:
        assert self.tls is not None
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        while self.more():
            if random.random() < 0.5:  # mid-handshake: a ClientHello, then RST
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = context.wrap_bio(incoming, outgoing)
                try:
                    tls.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                await self._exchange(self.tls, outgoing.read(), reset=True)
            else:  # after a whole handshake, then RST
                try:
                    _, writer = await asyncio.wait_for(asyncio.open_connection(*self.tls, ssl=context), 15)
                    writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, LINGER_ZERO
                    )
                    writer.transport.abort()
                except (OSError, asyncio.TimeoutError):
                    pass
            self.count("TLS connect-and-reset")

    async def run(self, slowloris: int) -> None:
        workers = [self.max_frames() for _ in range(2)]
        workers += [self.ping_flood()]
        workers += [self.garbage() for _ in range(6)]
        workers += [self.resets() for _ in range(6)]
        workers += [self.slowloris() for _ in range(slowloris)]
        if self.tls is not None:
            workers += [self.tls_resets() for _ in range(4)]
        await asyncio.gather(*workers)

    async def run_tls(self) -> None:
        """TLS connect-and-reset alone, at the TLS server."""
        await asyncio.gather(*(self.tls_resets() for _ in range(4)))


# ------------------------------------------------------------------ phases


def cycles(address: tuple[str, int], count: int, server: ServerUnderTest) -> tuple[int, int]:
    """*count* connect/run/close cycles, every other one leaving mid-command. RSS (KiB) after
    the first tenth and after all."""
    first = 0
    for n in range(count):
        try:
            with rcmd.connect(*address, connect_timeout=30) as client:
                if n % 2:
                    client.stream("sleep 30")  # and leave while it runs
                else:
                    client.run("true")
        except (rcmd.RcmdError, OSError):
            pass
        if n + 1 == count // 10:
            first = server.rss()
    return first, server.rss()


def lockout(address: tuple[str, int], silent: int, give_up: float) -> float | None:
    """Hold *silent* sockets that send HELLO and nothing more; seconds until an honest client
    gets ``true`` through (None: not within *give_up*)."""
    held = []
    try:
        for _ in range(silent):
            try:
                sock = socket.create_connection(address, timeout=10)
                sock.sendall(HELLO)
                held.append(sock)
            except OSError:
                break
        started = time.monotonic()
        while time.monotonic() - started < give_up:
            try:
                with rcmd.connect(
                    *address, connect_timeout=max(1.0, give_up - (time.monotonic() - started))
                ) as client:
                    if client.run("true").returncode == 0:
                        return time.monotonic() - started
            except (rcmd.RcmdError, OSError):
                time.sleep(0.2)
        return None
    finally:
        for sock in held:
            sock.close()


def newcomers(address: tuple[str, int], slowloris: int, seconds: float, nice: int) -> Latencies:
    """New clients, one after another, each connecting and running ``true``, while
    *slowloris* sockets (at *nice*) hold the startups: how long a new client waits to get in."""
    flood = Attack(address, None, time.monotonic() + seconds + 5, 10**9, False)

    async def slowloris_only() -> None:
        await asyncio.gather(*(flood.slowloris() for _ in range(slowloris)))

    def attack() -> None:
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + nice)  # this thread
        asyncio.run(slowloris_only())

    attacker = threading.Thread(target=attack, daemon=True)
    attacker.start()
    out = Latencies()
    try:
        while flood.inputs.get("slowloris", 0) < slowloris:  # the flood is under way
            if not attacker.is_alive():
                break
            time.sleep(0.05)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                with rcmd.connect(*address, connect_timeout=30) as client:
                    client.run("true")
                out.samples.append(time.perf_counter() - started)
            except (rcmd.RcmdError, OSError) as exc:
                out.errors.append(str(exc))
    finally:
        flood.until = 0.0  # stop
        attacker.join(30)
    return out


def settle(server: ServerUnderTest, timeout: float) -> None:
    """Wait (bounded) for the server to close what the attack left and reap its children."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (server.fds() > server.fds_start or server.children()):
        time.sleep(0.25)


def make_certificate(folder: Path) -> str | None:
    try:
        import trustme
    except ImportError:
        return None
    ca = trustme.CA()
    path = folder / "server.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short phases (about 40 s in all)")
    parser.add_argument("--server-path", help="put this directory first on the server's PYTHONPATH")
    parser.add_argument("--slowloris", type=int, default=200, help="slowloris sockets at once")
    parser.add_argument(
        "--no-cd-line", action="store_true", help="leave out the 1 MiB `cd` line (its parse is a known stall)"
    )
    parser.add_argument("--log-level", default="info", help="the servers' --log-level (default info)")
    parser.add_argument(
        "--attackers-nice",
        type=int,
        default=10,
        help="the attack's niceness (default 10; 0: the same priority as the servers). On one "
        "small machine the attack generator takes CPU the server needs; on a network it is elsewhere",
    )
    parser.add_argument(
        "--worst", action="store_true", help="only time the costliest 1 MiB messages (JSON on stdout)"
    )
    parser.add_argument(
        "--tls-together",
        action="store_true",
        help="attack the TLS server during the main attack (default: in a phase of its own: on one "
        "small machine a second server under attack takes CPU from the one the honest client uses)",
    )
    parser.add_argument("--honest", help=argparse.SUPPRESS)  # HOST:PORT: be the honest client
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.honest:
        return honest_main(args.honest, args.seconds)
    if args.worst:
        return worst_main()
    quick = args.quick
    idle_commands = 200 if quick else 1000
    attack_seconds, attack_budget = (10.0, 20_000) if quick else (120.0, 100_000)
    cycle_count = 1000 if quick else 10_000
    silent, give_up = (1000, 15.0) if quick else (1000, 30.0)

    folder = Path(tempfile.mkdtemp(prefix="rcmd-soak-"))
    servers: list[ServerUnderTest] = []
    try:
        log_level = ("--log-level", args.log_level)
        plain = ServerUnderTest(folder, "plain", args.server_path, *log_level)
        servers.append(plain)
        cert = make_certificate(folder)
        tls = (
            ServerUnderTest(folder, "tls", args.server_path, *log_level, "--tls-cert", cert) if cert else None
        )
        if tls is not None:
            servers.append(tls)

        print("costly messages: the per-message path, 1 MiB RUNs", file=sys.stderr)
        costs = worst_messages(args.server_path)

        print(f"phase 1: {idle_commands} commands, nobody attacking", file=sys.stderr)
        idle = Latencies()
        honest_loop(plain.address, idle, idle_commands, 600.0)

        print(f"phase 2: attack, {attack_seconds:g} s or {attack_budget} inputs", file=sys.stderr)
        attack = Attack(
            plain.address,
            tls.address if tls and args.tls_together else None,
            time.monotonic() + attack_seconds,
            attack_budget,
            not args.no_cd_line,
        )
        attack.on_thousand.append(plain)
        honest = honest_process(plain.address, attack_seconds)
        started, cpu_before = time.monotonic(), plain.cpu_seconds()
        tls_before, own_before = (tls.cpu_seconds() if tls else 0.0), sum(os.times()[:2])
        before_nice = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, before_nice + args.attackers_nice)  # this thread only
        try:
            asyncio.run(attack.run(args.slowloris))
        finally:
            with contextlib.suppress(PermissionError):  # only root may take a niceness back
                os.setpriority(os.PRIO_PROCESS, 0, before_nice)
            attack_took = time.monotonic() - started
            attack_cpu = (plain.cpu_seconds() - cpu_before) / attack_took
            tls_cpu = ((tls.cpu_seconds() - tls_before) if tls else 0.0) / attack_took
            attackers_cpu = (sum(os.times()[:2]) - own_before) / attack_took
            report = json.loads(honest.communicate(timeout=attack_seconds + 120)[0] or "{}")
        under_attack = Latencies(report.get("samples", []), report.get("errors", []))
        rss_after_attack = plain.rss()

        tls_took = 0.0
        if tls is not None and not args.tls_together:
            tls_started = time.monotonic()
            tls_seconds, tls_budget = attack_seconds / 4, attack_budget // 5
            print(
                f"phase 2b: TLS connect-and-reset, {tls_seconds:g} s or {tls_budget} inputs", file=sys.stderr
            )
            tls_attack = Attack(plain.address, tls.address, time.monotonic() + tls_seconds, tls_budget, False)
            with contextlib.suppress(PermissionError):
                os.setpriority(os.PRIO_PROCESS, 0, before_nice + args.attackers_nice)
            try:
                asyncio.run(tls_attack.run_tls())
            finally:
                with contextlib.suppress(PermissionError):
                    os.setpriority(os.PRIO_PROCESS, 0, before_nice)
            tls_took = time.monotonic() - tls_started
            for kind, count in tls_attack.inputs.items():
                attack.inputs[kind] = attack.inputs.get(kind, 0) + count

        print(f"phase 2c: new clients while {args.slowloris} slowloris sockets flood", file=sys.stderr)
        arriving = newcomers(plain.address, args.slowloris, 10.0 if quick else 30.0, args.attackers_nice)
        settle(plain, 15.0)

        print(f"phase 3: {cycle_count} connect/run/close cycles", file=sys.stderr)
        cycles_first, cycles_last = cycles(plain.address, cycle_count, plain)

        print(f"phase 4: {silent} silent sockets held, one honest client", file=sys.stderr)
        got_in = lockout(plain.address, silent, give_up)

        for server in servers:
            settle(server, 15.0)

        inputs = sum(attack.inputs.values())
        rows = [
            (
                "hostile inputs tried",
                f"{inputs} in {attack_took + tls_took:.0f} s: "
                + ", ".join(f"{k} {v}" for k, v in sorted(attack.inputs.items())),
            ),
            ("honest `true`, idle", idle.row()),
            ("honest `true`, under attack", under_attack.row()),
            (
                "  CPU in the attack",
                f"server {attack_cpu:.0%} of a core, TLS server {tls_cpu:.0%}, attackers {attackers_cpu:.0%}"
                f" at nice {args.attackers_nice}"
                f" ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})"
                + ("" if args.tls_together or tls is None else "; the TLS attack came after, alone"),
            ),
            (
                "  p99 attack / p99 idle",
                f"{under_attack.p99() / idle.p99():.1f}x  (goal <= 3x; max goal < 1 s)",
            ),
            (
                f"new client's connect + `true`, {args.slowloris} slowloris",
                arriving.row().replace("(n=", "(clients ", 1),
            ),
            (
                "worst 1 MiB message on the loop",
                "{:.1f} ms ({})".format(*max((ms * 1e3, name) for name, ms in costs.items())),
            ),
            *(
                (f"  {name}", f"{ms * 1e3:.1f} ms")
                for name, ms in sorted(costs.items(), key=lambda item: -item[1])
            ),
            (
                "RSS after 1,000 inputs -> after all",
                f"{(attack.rss_at_1000 or 0) / 1024:.1f} -> {rss_after_attack / 1024:.1f} MiB  (goal <= 1.5x)",
            ),
            (
                f"RSS after {cycle_count // 10} -> {cycle_count} cycles",
                f"{cycles_first / 1024:.1f} -> {cycles_last / 1024:.1f} MiB  (goal: within 5 MiB)",
            ),
            (
                f"honest client in, {silent} silent sockets held",
                f"{got_in:.2f} s" if got_in is not None else f"not within {give_up:g} s (goal < 10 s)",
            ),
        ]
        for server, name in ((plain, "plain"), (tls, "tls")):
            if server is None:
                continue
            rows += [
                (f"[{name}] unhandled exceptions in log", str(server.unhandled())),
                (
                    f"[{name}] RSS start / peak / end",
                    f"{server.rss_start / 1024:.1f} / {server.rss('VmHWM') / 1024:.1f} / {server.rss() / 1024:.1f} MiB",
                ),
                (f"[{name}] fds start -> end", f"{server.fds_start} -> {server.fds()}"),
                (f"[{name}] processes left (watchdog)", str(server.children())),
                (f"[{name}] still serving", "yes" if server.alive() else "NO: it died"),
            ]
        if tls is None:
            rows.append(("TLS", "skipped: trustme is not installed"))
        width = max(len(label) for label, _ in rows)
        print(
            f"\nrcmd soak ({'quick' if quick else 'full'}), server code from {args.server_path or 'this checkout'}"
        )
        for label, value in rows:
            print(f"  {label:<{width}}  {value}")
        if os.environ.get("SOAK_KEEP_LOGS"):
            print(f"  server logs: {folder}")
        return 0
    finally:
        for server in servers:
            server.stop()
        if not os.environ.get("SOAK_KEEP_LOGS"):
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
