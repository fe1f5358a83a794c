"""``rcmd put``, ``rcmd get`` and ``rcmd df``: file transfers from the command line.

Thin, as cli.py is: the work is in rcmd.files. A progress bar (rich) goes to stderr when it
is a terminal, or with ``--progress``; the result line of each file (size, SHA-256, where it
resumed) goes to stdout unless ``--quiet``. Ctrl-C stops at once and says how to resume.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer

from .auth import SecretError, load_secret
from .client import DEFAULT_CONNECT_TIMEOUT, Client, connect
from .client_core import host_port
from .console import ExitStatus, connection_failure
from .errors import RcmdError, RemoteFileError, TransferError
from .scram import PasswordError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from .files import TransferResult

#: rcmd put/get exit with this when a file failed but the connection held (as scp does).
TRANSFER_FAILED = 1

files_app = typer.Typer(add_completion=False, rich_markup_mode=None, no_args_is_help=True)
_SETTINGS = {"help_option_names": ["-h", "--help"]}

HostOption = typer.Option(
    None, "-H", "--host", metavar="HOST[:PORT]", help="Server (default 127.0.0.1:9000)."
)
SecretOption = typer.Option(None, help="File holding the shared secret (else $RCMD_SECRET).")
UserOption = typer.Option(None, "--user", "-u", help="Log in as this user (a server with --users).")
PasswordOption = typer.Option(None, help="File holding the user's password (mode 600); else a prompt.")
TlsOption = typer.Option(False, "--tls", help="Use TLS, trusting the system's certificate authorities.")
TlsCaOption = typer.Option(None, help="Use TLS, trusting the CA certificates in this file.")
TimeoutOption = typer.Option(DEFAULT_CONNECT_TIMEOUT, help="Seconds to connect and handshake.")
RecursiveOption = typer.Option(False, "-r", "--recursive", help="Copy directories and what they hold.")
PreserveOption = typer.Option(False, "-p", "--preserve", help="Keep each file's mode and modification time.")
QuietOption = typer.Option(False, "-q", "--quiet", help="Print nothing but errors.")
NoResumeOption = typer.Option(False, "--no-resume", help="Start over, ignoring what an earlier attempt left.")
FsyncOption = typer.Option(
    False, "--fsync", help="Flush each file to disk before it takes its name (slower; as rsync --fsync)."
)
ProgressOption = typer.Option(
    None, "--progress/--no-progress", help="Show a progress bar (default: when stderr is a terminal)."
)


@dataclass
class Options:
    recursive: bool
    preserve: bool
    quiet: bool
    resume: bool
    progress: bool
    fsync: bool = False


def _fail(status: int, message: str) -> typer.Exit:
    typer.echo(f"rcmd: {message}", err=True)
    return typer.Exit(status)


@contextlib.contextmanager
def _connected(
    host: str | None,
    secret_file: str | None,
    user: str | None,
    password_file: str | None,
    tls: bool,
    tls_ca: str | None,
    connect_timeout: float,
) -> Iterator[Client]:
    """A client for *host*, with rcmd's connection failures turned into its exit codes."""
    from .cli import parse_target
    from .oneshot import password_for

    address, port = parse_target(host)
    where = host_port(address, port)
    try:
        secret = load_secret(secret_file) if user is None else None
        password = password_for(user, password_file)
    except (SecretError, PasswordError) as exc:
        raise _fail(ExitStatus.USAGE, str(exc)) from None
    try:
        with connect(
            address,
            port,
            connect_timeout=connect_timeout,
            secret=secret,
            tls=tls,
            tls_ca=tls_ca,
            user=user,
            password=password,
        ) as client:
            yield client
    except KeyboardInterrupt:
        raise _fail(ExitStatus.CANCELLED, "interrupted: run the same command again to resume") from None
    except (RcmdError, OSError) as exc:
        failure = connection_failure(exc, where, address, connect_timeout)
        if failure is None:
            raise
        status, message = failure
        if status == ExitStatus.CONNECTION_LOST:
            message += "; run the same command again to resume"
        raise _fail(status, message) from None


class Reporter:
    """The progress bar (per file and in total) and the result lines."""

    def __init__(self, options: Options, total: int) -> None:
        self.options = options
        self._progress: Progress | None = None
        self._file_task: TaskID | None = None
        self._total_task: TaskID | None = None
        self._done_before = 0
        if options.progress:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._total_task = self._progress.add_task("total", total=total)

    def start(self, name: str) -> None:
        if self._progress is not None:
            self._file_task = self._progress.add_task(name, total=None)

    def advance(self, done: int, total: int | None) -> None:
        if self._progress is not None and self._file_task is not None:
            self._progress.update(self._file_task, completed=done, total=total)
            assert self._total_task is not None
            self._progress.update(self._total_task, completed=self._done_before + done)

    def finished(self, name: str, result: TransferResult | None) -> None:
        if self._progress is not None and self._file_task is not None:
            self._progress.remove_task(self._file_task)
            self._file_task = None
        if result is not None:
            self._done_before += result.size
            if not self.options.quiet:
                resumed = f" (resumed at byte {result.resumed_from})" if result.resumed_from else ""
                self.echo(f"{name}  {result.size} bytes  sha256 {result.sha256}{resumed}")

    def echo(self, line: str, *, err: bool = False) -> None:
        if self._progress is not None:
            self._progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            typer.echo(line, err=err)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def _options(recursive: bool, preserve: bool, quiet: bool, no_resume: bool, progress: bool | None) -> Options:
    if progress is None:
        progress = not quiet and sys.stderr.isatty()
    return Options(recursive, preserve, quiet, not no_resume, progress)


def _remote_is_dir(client: Client, path: str) -> bool:
    try:
        return client.stat(path).type == "dir"
    except RemoteFileError:
        return False


@files_app.command("put", context_settings=_SETTINGS)
def put_command(
    paths: list[str] = typer.Argument(..., metavar="LOCAL... REMOTE"),
    host: str | None = HostOption,
    recursive: bool = RecursiveOption,
    preserve: bool = PreserveOption,
    quiet: bool = QuietOption,
    no_resume: bool = NoResumeOption,
    progress: bool | None = ProgressOption,
    secret_file: str | None = SecretOption,
    user: str | None = UserOption,
    password_file: str | None = PasswordOption,
    tls: bool = TlsOption,
    tls_ca: str | None = TlsCaOption,
    connect_timeout: float = TimeoutOption,
) -> None:
    """Upload files: verified by SHA-256, renamed into place only when whole, resumable."""
    if len(paths) < 2:
        raise typer.BadParameter("give at least one LOCAL and the REMOTE", param_hint="LOCAL... REMOTE")
    *sources, remote = paths
    options = _options(recursive, preserve, quiet, no_resume, progress)
    jobs: list[tuple[str, str]] = []  # (local file, remote path); a remote path "" + dir: mkdir
    with _connected(host, secret_file, user, password_file, tls, tls_ca, connect_timeout) as client:
        into = remote.endswith("/") or len(sources) > 1 or _remote_is_dir(client, remote)
        dirs: list[str] = []
        for source in sources:
            target = posixpath.join(remote, os.path.basename(source.rstrip("/"))) if into else remote
            if os.path.isdir(source):
                if not recursive:
                    typer.echo(f"rcmd: {source}: is a directory (use -r)", err=True)
                    raise typer.Exit(TRANSFER_FAILED)
                for folder, _subdirs, files in os.walk(source):
                    relative = os.path.relpath(folder, source)
                    base = target if relative == "." else posixpath.join(target, *relative.split(os.sep))
                    dirs.append(base)
                    jobs += [
                        (os.path.join(folder, name), posixpath.join(base, name)) for name in sorted(files)
                    ]
            else:
                jobs.append((source, target))
        total = sum(os.path.getsize(local) for local, _ in jobs if os.path.exists(local))
        for folder in dirs:
            with contextlib.suppress(RemoteFileError):
                client.mkdir(folder)  # it may be there already; a real problem shows on put
        status = _transfer_all(client, jobs, options, total, upload=True)
    raise typer.Exit(status)


@files_app.command("get", context_settings=_SETTINGS)
def get_command(
    paths: list[str] = typer.Argument(..., metavar="REMOTE... LOCAL"),
    host: str | None = HostOption,
    recursive: bool = RecursiveOption,
    preserve: bool = PreserveOption,
    quiet: bool = QuietOption,
    no_resume: bool = NoResumeOption,
    progress: bool | None = ProgressOption,
    fsync: bool = FsyncOption,
    secret_file: str | None = SecretOption,
    user: str | None = UserOption,
    password_file: str | None = PasswordOption,
    tls: bool = TlsOption,
    tls_ca: str | None = TlsCaOption,
    connect_timeout: float = TimeoutOption,
) -> None:
    """Download files: verified by SHA-256, renamed into place only when whole, resumable."""
    if len(paths) < 2:
        raise typer.BadParameter("give at least one REMOTE and the LOCAL", param_hint="REMOTE... LOCAL")
    *sources, local = paths
    options = _options(recursive, preserve, quiet, no_resume, progress)
    options.fsync = fsync
    into = os.path.isdir(local) or len(sources) > 1 or local.endswith("/")
    jobs: list[tuple[str, str]] = []  # (remote file, local path)
    with _connected(host, secret_file, user, password_file, tls, tls_ca, connect_timeout) as client:
        total = 0
        for source in sources:
            target = os.path.join(local, posixpath.basename(source.rstrip("/"))) if into else local
            try:
                entry = client.stat(source)
            except RemoteFileError as exc:
                typer.echo(f"rcmd: {exc.reason}", err=True)
                raise typer.Exit(TRANSFER_FAILED) from None
            if entry.type == "dir":
                if not recursive:
                    typer.echo(f"rcmd: {source}: is a directory (use -r)", err=True)
                    raise typer.Exit(TRANSFER_FAILED)
                total += _walk_remote(client, source, target, jobs)
            else:
                jobs.append((source, target))
                total += entry.size
        status = _transfer_all(client, jobs, options, total, upload=False)
    raise typer.Exit(status)


def _walk_remote(client: Client, remote: str, local: str, jobs: list[tuple[str, str]]) -> int:
    """Add the files under the remote directory *remote* to *jobs*, making the local
    directories as it goes; returns their total size."""
    os.makedirs(local, exist_ok=True)
    total = 0
    for entry in client.listdir(remote):
        source, target = posixpath.join(remote, entry.name), os.path.join(local, entry.name)
        if entry.type == "dir":
            total += _walk_remote(client, source, target, jobs)
        elif entry.type == "file":
            jobs.append((source, target))
            total += entry.size
    return total


def _transfer_all(
    client: Client, jobs: list[tuple[str, str]], options: Options, total: int, *, upload: bool
) -> int:
    reporter = Reporter(options, total)
    status = 0
    try:
        for source, target in jobs:
            shown = target
            reporter.start(shown)
            result = None
            try:
                if upload:
                    result = client.put(
                        source,
                        target,
                        progress=reporter.advance,
                        resume=options.resume,
                        preserve=options.preserve,
                    )
                else:
                    result = client.get(
                        source,
                        target,
                        progress=reporter.advance,
                        resume=options.resume,
                        preserve=options.preserve,
                        fsync=options.fsync,
                    )
            except (RemoteFileError, TransferError) as exc:
                kept = f" ({exc.kept} bytes kept: run the same command again to resume)" if exc.kept else ""
                reporter.echo(f"rcmd: {exc.reason}{kept}", err=True)
                status = TRANSFER_FAILED
            except OSError as exc:
                reporter.echo(f"rcmd: {exc.filename or source}: {exc.strerror or exc}", err=True)
                status = TRANSFER_FAILED
                if client._closed:
                    break
            finally:
                reporter.finished(shown, result)
    finally:
        reporter.close()
    return status


@files_app.command("df", context_settings=_SETTINGS)
def df_command(
    host: str | None = HostOption,
    secret_file: str | None = SecretOption,
    user: str | None = UserOption,
    password_file: str | None = PasswordOption,
    tls: bool = TlsOption,
    tls_ca: str | None = TlsCaOption,
    connect_timeout: float = TimeoutOption,
) -> None:
    """Show how much of your quota your home uses."""
    with _connected(host, secret_file, user, password_file, tls, tls_ca, connect_timeout) as client:
        try:
            used, quota = client.disk_usage()
        except RemoteFileError as exc:
            raise _fail(TRANSFER_FAILED, exc.reason) from None
    limit = (
        "no limit" if quota is None else f"{quota} bytes ({100 * used / quota if quota else 100:.1f}% used)"
    )
    typer.echo(f"used {used} bytes of {limit}")


def main(argv: list[str]) -> None:
    files_app(args=argv, prog_name="rcmd")
