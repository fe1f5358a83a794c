"""Ansible connection plugin: run Ansible's modules through rcmd servers.

    export ANSIBLE_CONNECTION_PLUGINS=$(rcmd ansible-path)
    ansible all -i 'web1,web2,' -c rcmd -m ping

Ansible's forks and strategies do the scheduling; rcmd carries the bytes. ``exec_command``
is one RUN on a connection kept for the host (the module on stdin when pipelining is on, as
the ssh plugin does it); ``put_file``/``fetch_file`` are the client's put/get (SHA-256
verified, renamed into place). No become.
"""

from __future__ import annotations

import os
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

DOCUMENTATION = """
    name: rcmd
    short_description: run tasks through an rcmd server
    description:
        - Runs commands and moves files over rcmd's length-prefixed protocol (one TCP connection per host),
          with rcmd's shared-secret authentication and TLS.
    author: rcmd
    version_added: "2.15"
    options:
      remote_addr:
        description: Address of the rcmd server.
        default: inventory_hostname
        type: string
        vars:
          - name: inventory_hostname
          - name: ansible_host
          - name: ansible_rcmd_host
      port:
        description: Port of the rcmd server.
        type: int
        default: 9000
        vars:
          - name: ansible_port
          - name: ansible_rcmd_port
      rcmd_secret_file:
        description: File holding the shared secret (else $RCMD_SECRET).
        type: string
        env:
          - name: RCMD_SECRET_FILE
        vars:
          - name: ansible_rcmd_secret_file
      rcmd_user:
        description: Log in as this user (a server with user accounts) instead of with the shared secret.
        type: string
        vars:
          - name: ansible_rcmd_user
      rcmd_password_file:
        description: File holding that user's password (mode 600).
        type: string
        env:
          - name: RCMD_PASSWORD_FILE
        vars:
          - name: ansible_rcmd_password_file
      rcmd_tls:
        description: Use TLS, trusting the system's certificate authorities.
        type: bool
        default: false
        vars:
          - name: ansible_rcmd_tls
      rcmd_tls_ca:
        description: Use TLS, trusting the CA certificates in this file.
        type: string
        vars:
          - name: ansible_rcmd_tls_ca
      rcmd_connect_timeout:
        description: Seconds to connect and handshake.
        type: float
        default: 10
        vars:
          - name: ansible_rcmd_connect_timeout
      rcmd_timeout:
        description: Seconds one command may run before the server kills it (0, the default, no limit).
        type: float
        default: 0
        vars:
          - name: ansible_rcmd_timeout
    extends_documentation_fragment:
      - connection_pipelining
"""

display = Display()

if t.TYPE_CHECKING:
    from rcmd.client import Client


class Connection(ConnectionBase):
    """An rcmd connection for one host, opened on first use and kept for its tasks."""

    transport = "rcmd"
    has_pipelining = True

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Client | None = None

    @property
    def _where(self) -> str:
        return f"{self.get_option('remote_addr')}:{self.get_option('port')}"

    def _connect(self) -> Connection:
        if self._client is not None:
            return self
        from rcmd.auth import load_secret
        from rcmd.client import connect
        from rcmd.errors import RcmdError

        host, port = self.get_option("remote_addr"), int(self.get_option("port"))
        display.vvv(f"ESTABLISH RCMD CONNECTION TO {host}:{port}", host=host)
        user = self.get_option("rcmd_user")
        try:
            secret = password = None
            if user is None:
                secret = load_secret(self.get_option("rcmd_secret_file"))
            else:
                from rcmd.scram import load_password

                password_file = self.get_option("rcmd_password_file")
                if password_file is None:
                    raise ValueError("rcmd_user needs rcmd_password_file (ansible_rcmd_password_file)")
                password = load_password(password_file)
            self._client = connect(
                host,
                port,
                framing="prefixed",
                connect_timeout=float(self.get_option("rcmd_connect_timeout")),
                secret=secret,
                tls=bool(self.get_option("rcmd_tls")),
                tls_ca=self.get_option("rcmd_tls_ca"),
                user=user,
                password=password,
            )
        except (OSError, RcmdError, ValueError) as exc:
            raise AnsibleConnectionFailure(f"rcmd: cannot connect to {host}:{port}: {exc}") from exc
        self._connected = True
        return self

    def _run(self, command: str, input: bytes | None = None) -> tuple[int, bytes, bytes]:
        from rcmd.errors import RcmdError

        self._connect()
        assert self._client is not None
        timeout = float(self.get_option("rcmd_timeout")) or None
        try:
            result = self._client.run(command, input=input, timeout=timeout)
        except (OSError, RcmdError) as exc:
            self.close()
            raise AnsibleConnectionFailure(f"rcmd: {self._where}: {exc}") from exc
        return result.returncode if result.returncode is not None else 255, result.stdout, result.stderr

    def exec_command(
        self, cmd: str, in_data: bytes | None = None, sudoable: bool = True
    ) -> tuple[int, bytes, bytes]:
        """One RUN; with pipelining, *in_data* (the module) is the command's stdin."""
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        display.vvv(f"EXEC {cmd}", host=self.get_option("remote_addr"))
        return self._run(cmd, in_data)

    def put_file(self, in_path: str, out_path: str) -> None:
        """The client's put: a partial file renamed into place once its SHA-256 matches."""
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        if not os.path.exists(in_path):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        self._transfer("put", in_path, out_path)

    def fetch_file(self, in_path: str, out_path: str) -> None:
        """The client's get, verified the same way."""
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.get_option("remote_addr"))
        self._transfer("get", in_path, out_path)

    def _transfer(self, direction: str, in_path: str, out_path: str) -> None:
        from rcmd.errors import RcmdError

        self._connect()
        assert self._client is not None
        try:
            if direction == "put":
                self._client.put(in_path, out_path, resume=False)
            else:
                self._client.get(in_path, out_path, resume=False)
        except (OSError, RcmdError) as exc:
            raise AnsibleError(f"rcmd: {direction} {in_path} -> {out_path} failed: {exc}") from exc

    def reset(self) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self._connected = False
