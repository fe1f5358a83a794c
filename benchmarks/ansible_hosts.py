"""Ansible over rcmd on loopback: ``ansible all -m ping`` on 100 hosts, against Ansible over
ssh (ControlPersist, Ansible's default) where an sshd can be started here, and beside
``-c local`` (no transport at all: Ansible's own cost per host, the floor).

    python benchmarks/ansible_hosts.py                  # 100 hosts, forks 5 and 50
    python benchmarks/ansible_hosts.py --hosts 20 --forks 10

The rcmd hosts are a ServerFarm in a child process (one server per port on 127.0.0.1); the
ssh hosts are that many inventory names for one private sshd (benchmarks/bench.py's), all
sharing its ControlPersist master, which flatters ssh. Pipelining is on in both (the module
goes to the remote Python on stdin). Needs ansible-core (pip install 'rcmd[ansible]').
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import start_farm, stop_farm

from rcmd.ansible import PLUGIN_DIR

#: Beyond this, the farm and Ansible's forks outgrow a shared 2-core machine.
MAX_HOSTS = 500


def ansible_ping(inventory: Path, forks: int, workdir: Path) -> tuple[float, int, str]:
    """Seconds for ``ansible all -m ping``, its exit code, and its last line of output."""
    ansible = Path(sys.executable).parent / "ansible"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        "ANSIBLE_CONFIG": str(workdir / "ansible.cfg"),
        "ANSIBLE_CONNECTION_PLUGINS": str(PLUGIN_DIR),
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "local-tmp"),
        "ANSIBLE_REMOTE_TMP": str(workdir / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [str(ansible), "all", "-i", str(inventory), "-m", "ping", "--forks", str(forks), "-o"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    elapsed = time.perf_counter() - started
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return elapsed, proc.returncode, lines[-1] if lines else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--forks", type=int, nargs="+", default=[5, 50])
    args = parser.parse_args(argv)
    if not 1 <= args.hosts <= MAX_HOSTS:
        parser.error(f"--hosts must be between 1 and {MAX_HOSTS}")
    if not (Path(sys.executable).parent / "ansible").exists():
        print("ansible-core is not installed beside this Python: pip install 'rcmd[ansible]'")
        return 1
    python = sys.executable
    print(f"ansible all -m ping, {args.hosts} hosts on loopback, pipelining on, {os.cpu_count()} cores")
    print(f"{'transport':>10} {'forks':>5} {'seconds':>8} {'hosts/s':>8} status")
    with tempfile.TemporaryDirectory(prefix="rcmd-ansible-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "ansible.cfg").write_text("")
        farm, hosts = start_farm(args.hosts)
        try:
            inventory = workdir / "rcmd.ini"
            inventory.write_text(
                "".join(
                    f"h{i:04d} ansible_host=127.0.0.1 ansible_port={host.rsplit(':', 1)[1]}\n"
                    for i, host in enumerate(hosts)
                )
                + f"[all:vars]\nansible_connection=rcmd\nansible_python_interpreter={python}\n"
            )
            for forks in args.forks:
                elapsed, status, last = ansible_ping(inventory, forks, workdir)
                print(
                    f"{'rcmd':>10} {forks:>5} {elapsed:>8.1f} {args.hosts / elapsed:>8.1f} {status}",
                    flush=True,
                )
                if status != 0:
                    print(f"           {last}")
        finally:
            stop_farm(farm)
        # Ansible's own cost per host: the same modules run here, with no transport at all.
        local = workdir / "local.ini"
        local.write_text(
            "".join(f"h{i:04d}\n" for i in range(args.hosts))
            + f"[all:vars]\nansible_connection=local\nansible_python_interpreter={python}\n"
        )
        for forks in args.forks:
            elapsed, status, _ = ansible_ping(local, forks, workdir)
            print(
                f"{'local':>10} {forks:>5} {elapsed:>8.1f} {args.hosts / elapsed:>8.1f} {status}", flush=True
            )
        ssh_rows(args, workdir, python)
    return 0


def ssh_rows(args: argparse.Namespace, workdir: Path, python: str) -> None:
    import bench

    try:
        sshd = bench.SshServer()
    except bench.SshServer.Unavailable as exc:
        print(f"{'ssh':>10}     - skipped: {exc}")
        return
    with sshd:
        key = Path(sshd.dir.name) / "user"
        inventory = workdir / "ssh.ini"
        inventory.write_text(
            "".join(f"h{i:04d} ansible_host=127.0.0.1 ansible_port={sshd.port}\n" for i in range(args.hosts))
            + "[all:vars]\nansible_connection=ssh\n"
            f"ansible_user={getpass.getuser()}\nansible_ssh_private_key_file={key}\n"
            f"ansible_python_interpreter={python}\n"
        )
        for forks in args.forks:
            elapsed, status, last = ansible_ping(inventory, forks, workdir)
            print(f"{'ssh':>10} {forks:>5} {elapsed:>8.1f} {args.hosts / elapsed:>8.1f} {status}", flush=True)
            if status != 0:
                print(f"           {last}")
    shutil.rmtree(workdir / "remote-tmp", ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
