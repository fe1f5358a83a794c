"""TLS on the server: handshakes a second, the event loop's largest stall meanwhile, bulk throughput.

    python benchmarks/tls_handshakes.py [--connects 500] [--concurrency 16] [--mib 256]

Handshakes: an in-process Server (the rcmd this interpreter imports) whose event loop runs
a ticker every millisecond, recording the largest wall-clock gap between two ticks past
that millisecond (the stall every client felt) and the largest CPU time the loop's own
thread spent between two ticks (the same, without the other processes of a busy machine);
a client subprocess makes --connects connections from --concurrency threads, each a whole
handshake that reads the server's HELLO and closes. Once with an RSA-2048 certificate,
once with RSA-4096 (self-signed, made here with the cryptography package trustme brings).

Throughput: a server subprocess, and ``head -c`` of --mib MiB through
``rcmd.connect(..., tls_ca=...)``, the best of --repeat runs.

Bounded: every server and child started here is stopped before the script ends.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

import rcmd
from rcmd.messages import Stdout
from rcmd.server import Server, ServerConfig

MiB = 1 << 20
SERVER_ARGV = [sys.executable, "-c", "from rcmd.cli import server_entry; server_entry()"]

CLIENTS = r"""
import socket, ssl, sys, threading, time
port, ca, total, threads = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
context = ssl.create_default_context(cafile=ca)
lock, started, failed = threading.Lock(), [0], [0]
def work():
    while True:
        with lock:
            if started[0] >= total:
                return
            started[0] += 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                    if not tls.recv(4096):  # the server's HELLO: it is through the handshake
                        raise ConnectionError("closed before HELLO")
        except OSError:
            with lock:
                failed[0] += 1
began = time.perf_counter()
pool = [threading.Thread(target=work) for _ in range(threads)]
for t in pool: t.start()
for t in pool: t.join()
print(time.perf_counter() - began, failed[0], flush=True)
"""


def self_signed(folder: Path, bits: int) -> tuple[str, str]:
    """A self-signed RSA certificate for 127.0.0.1 (its own CA): (server PEM, CA PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rcmd bench RSA-{bits}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    server, ca = folder / f"rsa{bits}.pem", folder / f"rsa{bits}-ca.pem"
    server.write_bytes(key_pem + cert_pem)
    ca.write_bytes(cert_pem)
    return str(server), str(ca)


class Ticker:
    """Runs on the loop every *interval* s: the largest stall past it, in wall and loop-thread CPU time."""

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.loop = asyncio.get_running_loop()
        self.max_gap = self.max_cpu = 0.0
        self.gaps: list[float] = []
        self._wall, self._cpu = time.perf_counter(), time.thread_time()
        self._handle = self.loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.gaps.append(wall - self._wall - self.interval)
        self.max_gap = max(self.max_gap, self.gaps[-1])
        self.max_cpu = max(self.max_cpu, cpu - self._cpu)
        self._wall, self._cpu = wall, cpu
        self._handle = self.loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        self._handle.cancel()


async def handshakes(
    cert: str, ca: str, connects: int, concurrency: int
) -> tuple[float, int, float, float, float]:
    """(handshakes a second, failures, largest stall ms, its 99th percentile, largest
    loop-thread CPU stretch ms)."""
    server = Server(ServerConfig(host="127.0.0.1", port=0, tls_cert=cert, max_startups=64))
    await server.start()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CLIENTS,
            str(server.address[1]),
            ca,
            str(connects),
            str(concurrency),
            stdout=subprocess.PIPE,
        )
        ticker = Ticker()  # after the fork, which is a stall of its own (a few ms)
        out, _ = await asyncio.wait_for(proc.communicate(), 600)
        ticker.stop()
        took, failed = out.split()
        p99 = sorted(ticker.gaps)[int(len(ticker.gaps) * 0.99)] if ticker.gaps else 0.0
        return connects / float(took), int(failed), ticker.max_gap * 1e3, p99 * 1e3, ticker.max_cpu * 1e3
    finally:
        await server.close()


def throughput(cert: str, ca: str, mib: int, repeat: int) -> float:
    """MiB/s of `head -c` through a TLS connection to a server subprocess, the best of *repeat*."""
    proc = subprocess.Popen(
        [*SERVER_ARGV, "--port", "0", "--host", "127.0.0.1", "--tls-cert", cert, "--log-level", "info"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        port = 0
        for line in proc.stderr:
            if "listening on" in line:
                port = int(line.split("listening on ")[1].split()[0].rsplit(":", 1)[1])
                break
        best = 0.0
        with rcmd.connect("127.0.0.1", port, tls_ca=ca) as client:
            for _ in range(repeat):
                size, began = 0, time.perf_counter()
                with client.stream(f"head -c {mib * MiB} /dev/zero") as events:
                    for event in events:
                        if isinstance(event, Stdout):
                            size += len(event.data)
                took = time.perf_counter() - began
                assert size == mib * MiB, size
                best = max(best, mib / took)
        return best
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connects", type=int, default=500)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"rcmd from {Path(rcmd.__file__).parent}, load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as folder:
        certs = {bits: self_signed(Path(folder), bits) for bits in (2048, 4096)}
        for bits, (cert, ca) in certs.items():
            for concurrency in args.concurrency:
                rate, failed, gap, p99, cpu = asyncio.run(handshakes(cert, ca, args.connects, concurrency))
                print(
                    f"RSA-{bits}: {args.connects} connects x{concurrency}: {rate:.0f} handshakes/s,"
                    f" {failed} failed; loop stall largest {gap:.1f} ms, p99 {p99:.2f} ms"
                    f" (loop thread CPU at a stretch {cpu:.1f} ms)"
                )
        cert, ca = certs[2048]
        rate = throughput(cert, ca, args.mib, args.repeat)
        print(
            f"throughput: {args.mib} MiB head -c over TLS (RSA-2048): {rate:.0f} MiB/s, best of {args.repeat}"
        )


if __name__ == "__main__":
    main()
