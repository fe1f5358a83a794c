"""The Ansible connection plugin (rcmd/ansible/rcmd.py) with the real ansible-core: ping,
command, copy and fetch against two local servers, with and without pipelining, a short
playbook, and an unreachable host. Skipped when ansible-core is not installed (the
`ansible` extra; `make test` installs it)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLIENT_ARGV

import rcmd

pytest.importorskip("ansible")
BIN = Path(sys.executable).parent
if not (BIN / "ansible").exists():
    pytest.skip("ansible-core's scripts are not beside this Python", allow_module_level=True)


@pytest.fixture(scope="module")
def servers():
    with rcmd.BackgroundServer(encoding="utf-8") as one, rcmd.BackgroundServer(encoding="utf-8") as two:
        yield one, two


@pytest.fixture
def ansible(servers, tmp_path):
    """Runs ``ansible``/``ansible-playbook`` with the plugin and an inventory of both servers."""
    plugin_dir = subprocess.run(
        [*CLIENT_ARGV, "ansible-path"], capture_output=True, text=True, check=True
    ).stdout.strip()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    inventory = tmp_path / "inventory.ini"
    (one, two) = servers
    inventory.write_text(
        "[fleet]\n"
        f"one ansible_host=127.0.0.1 ansible_port={one.address[1]}\n"
        f"two ansible_host=127.0.0.1 ansible_port={two.address[1]}\n"
        "[dead]\n"
        f"gone ansible_host=127.0.0.1 ansible_port={dead_port}\n"
        "[all:vars]\n"
        "ansible_connection=rcmd\n"
        f"ansible_python_interpreter={sys.executable}\n"
    )
    (tmp_path / "ansible.cfg").write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")},
        "ANSIBLE_CONFIG": str(tmp_path / "ansible.cfg"),
        "ANSIBLE_CONNECTION_PLUGINS": plugin_dir,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "local-tmp"),
        "ANSIBLE_REMOTE_TMP": str(tmp_path / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORKS": "2",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
    }

    def run(program: str, *args: str, pipelining: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / program), "-i", str(inventory), *args],
            capture_output=True,
            text=True,
            timeout=110,
            env={**env, "ANSIBLE_PIPELINING": str(pipelining)},
            cwd=tmp_path,
        )

    return run


def test_ansible_path_is_the_plugin_directory():
    proc = subprocess.run([*CLIENT_ARGV, "ansible-path"], capture_output=True, text=True, check=True)
    assert (Path(proc.stdout.strip()) / "rcmd.py").is_file()


@pytest.mark.parametrize("pipelining", [True, False])
def test_ping_both_hosts(ansible, pipelining):
    proc = ansible("ansible", "fleet", "-m", "ping", pipelining=pipelining)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2
    assert '"ping": "pong"' in proc.stdout


def test_command_module(ansible):
    proc = ansible("ansible", "fleet", "-m", "command", "-a", "echo hello from {{ inventory_hostname }}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hello from one" in proc.stdout
    assert "hello from two" in proc.stdout


def test_copy_and_fetch(ansible, tmp_path):
    source = tmp_path / "source.bin"
    payload = bytes(range(256)) * 400  # binary, ~100 KB
    source.write_bytes(payload)
    dest = tmp_path / "copied"
    dest.mkdir()
    proc = ansible(
        "ansible",
        "fleet",
        "-m",
        "copy",
        "-a",
        f"src={source} dest={dest}/{{{{ inventory_hostname }}}}.bin",
        pipelining=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (dest / "one.bin").read_bytes() == payload
    assert (dest / "two.bin").read_bytes() == payload
    fetched = tmp_path / "fetched"
    proc = ansible("ansible", "fleet", "-m", "fetch", "-a", f"src={dest}/one.bin dest={fetched}/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for host in ("one", "two"):
        assert (fetched / host / str(dest).lstrip("/") / "one.bin").read_bytes() == payload


def test_a_short_playbook(ansible, tmp_path):
    playbook = tmp_path / "site.yml"
    marker = tmp_path / "marker"
    host = "{{ inventory_hostname }}"
    playbook.write_text(
        "- hosts: fleet\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - name: write a marker per host\n"
        "      copy:\n"
        f'        content: "made by {host}\\n"\n'
        f'        dest: "{marker}-{host}"\n'
        "    - name: read it back\n"
        f'      command: cat "{marker}-{host}"\n'
        "      register: seen\n"
        "    - assert:\n"
        "        that: seen.stdout == 'made by ' + inventory_hostname\n"
    )
    proc = ansible("ansible-playbook", str(playbook))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "one                        : ok=3" in proc.stdout
    assert "two                        : ok=3" in proc.stdout
    assert Path(f"{marker}-one").read_text() == "made by one\n"


def test_an_unreachable_host(ansible):
    proc = ansible("ansible", "dead", "-m", "ping")
    assert proc.returncode == 4  # ansible's "host unreachable"
    assert "UNREACHABLE" in proc.stdout
    assert "connection refused" in proc.stdout.lower()


def test_a_user_account_through_the_plugin(ansible, tmp_path):
    from rcmd import scram
    from rcmd.server.accounts import add_user, load_users

    users = tmp_path / "users.toml"
    add_user(users, "ann", "ann's password", home=str(tmp_path / "ann"), iterations=scram.MIN_ITERATIONS)
    password_file = tmp_path / "password"
    password_file.write_text("ann's password\n")
    password_file.chmod(0o600)
    with rcmd.BackgroundServer(encoding="utf-8", users=load_users(users)) as server:
        inventory = tmp_path / "users.ini"
        inventory.write_text(
            f"ann ansible_host=127.0.0.1 ansible_port={server.address[1]} ansible_connection=rcmd "
            f"ansible_rcmd_user=ann ansible_rcmd_password_file={password_file} "
            f"ansible_python_interpreter={sys.executable}\n"
        )
        proc = ansible("ansible", "ann", "-i", str(inventory), "-m", "command", "-a", "pwd")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert str(tmp_path / "ann") in proc.stdout
