"""The server's side of file transfers and file operations (docs/PROTOCOL.md, section 5b).

An upload is written to a partial file beside its target (rcmd.files.partial_name), locked
with flock() so two uploads of one name cannot mix, and renamed into place with
os.replace() only after the SHA-256 of the whole file matches the client's and the data
is fsync()ed: a reader never sees half a file, a failed upload never destroys the old one.
A partial file outlives its connection, so the same upload can resume.

Paths go through a :class:`Tree`. For a transfer-only user it is a jail: every path is
resolved component by component from the home directory's descriptor, with O_NOFOLLOW at
each step (openat-style), so neither ``..`` nor a symbolic link leads out; a symbolic link
anywhere in such a path is refused. For everyone else it is the whole file system, from the
connection's working directory.
"""

from __future__ import annotations

import asyncio
import bisect
import errno
import functools
import logging
import os
import posixpath
import re
import stat
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import RemoteProtocolError, TransferError
from ..files import (
    CHUNK_SIZE,
    block_size_for,
    first_difference,
    hash_blocks,
    lock_partial,
    partial_name,
    resume_state,
    write_all,
)
from ..messages import (
    FileData,
    FileDone,
    FileEnd,
    FileError,
    Fs,
    FsResult,
    Get,
    GetReady,
    Message,
    Put,
    PutFrom,
    PutReady,
    encode_message,
)

if TYPE_CHECKING:
    from ..files import Hash
    from .accounts import Account
    from .session import PrefixedSession

log = logging.getLogger("rcmd.server")

#: Messages the session hands to FileService.handle().
FILE_MESSAGES = (Put, Get, Fs, PutFrom, FileData, FileEnd)
#: ``ls`` lists at most this many entries, and no more than fit in MAX_LISTING_BYTES; an
#: FS_RESULT that left any out says ``truncated``.
MAX_LISTING = 5000
#: The largest frame every client must accept after the handshake (docs/PROTOCOL.md §2): a
#: listing of long names (5,000 of 255 bytes would be 1.6 MB) is cut to fit in it.
MAX_LISTING_BYTES = 262_145
#: Control characters (newline, NUL, ESC...) are refused in names: they make listings and
#: logs lie, and NUL cannot reach the operating system at all.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class FileRefused(Exception):
    """A file request that cannot be done: answered with FILE_ERROR, the connection goes on."""

    def __init__(self, reason: str, kept: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kept = kept


def _os_reason(path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{path}: symbolic links are not followed here"
    return f"{path}: {exc.strerror or exc}"


class Usage:
    """Bytes a user's home holds, and bytes promised to uploads under way, against a quota.

    One per home directory and server process, shared by all that user's connections, so
    concurrent uploads cannot exceed the quota together. Counted once (a walk of the home)
    and then kept up to date by the transfers themselves.
    """

    _by_home: dict[str, Usage] = {}  # noqa: RUF012 - one registry per process, on purpose

    def __init__(self, home: str, quota: int | None) -> None:
        self.home = home
        self.quota = quota
        self.used = _disk_usage(home)
        self.reserved = 0

    @classmethod
    def of(cls, home: str, quota: int | None) -> Usage:
        usage = cls._by_home.get(home)
        if usage is None:
            usage = cls._by_home[home] = cls(home, quota)
        usage.quota = quota
        return usage

    def reserve(self, count: int) -> bool:
        """Promise *count* more bytes to an upload, if the quota allows it."""
        if self.quota is not None and self.used + self.reserved + count > self.quota:
            return False
        self.reserved += count
        return True

    def release(self, count: int) -> None:
        self.reserved = max(0, self.reserved - count)

    def grew(self, count: int) -> None:
        """*count* bytes (negative: freed) were written to (removed from) the home."""
        self.used = max(0, self.used + count)


def _disk_usage(home: str) -> int:
    total = 0
    for folder, _dirs, files in os.walk(home):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass  # gone meanwhile
    return total


class Tree:
    """Where a connection's paths lead. *root* None: the whole file system from the real
    working directory *cwd*; else a jail at the real directory *root*, with *cwd* a path
    inside it (``/`` is the root), as an sftp server's chroot shows it."""

    def __init__(self, root: str | None, cwd: str) -> None:
        self.root = root
        self.cwd = cwd if root is None else "/"

    @property
    def confined(self) -> bool:
        return self.root is not None

    def _absolute(self, path: str) -> str:
        if _CONTROL.search(path):
            raise FileRefused(f"{path!r}: control characters (newline, NUL, ...) are not allowed in names")
        if self.root is None:
            return os.path.normpath(os.path.join(self.cwd, os.path.expanduser(path)))
        return posixpath.normpath(posixpath.join(self.cwd, path))

    def open_dir(self, path: str) -> tuple[int, str]:
        """A descriptor of the directory *path* and its path as the user sees it."""
        absolute = self._absolute(path or ".")
        if self.root is None:
            try:
                return os.open(absolute, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), absolute
            except OSError as exc:
                raise FileRefused(_os_reason(path, exc)) from None
        if absolute.startswith("//"):
            absolute = "/" + absolute.lstrip("/")
        return self._walk([part for part in absolute.split("/") if part], path), absolute

    def _walk(self, parts: list[str], shown: str) -> int:
        """Open each component below the root with O_NOFOLLOW: no symbolic link is followed,
        and ``..`` never appears (the path was normalised against ``/``, the root)."""
        assert self.root is not None
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.root, flags)
        try:
            for part in parts:
                assert part not in ("..", ".")
                try:
                    next_fd = os.open(part, flags, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(fd, part):
                        raise FileRefused(f"{shown}: symbolic links are not followed here") from None
                    raise FileRefused(_os_reason(shown, exc)) from None
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_parent(self, path: str) -> tuple[int, str, str]:
        """A descriptor of the directory that holds *path*, the last component's name, and
        *path* as the user sees it. Refuses a path with no last name (``/``, ``..``)."""
        if not path:
            raise FileRefused("an empty path")
        absolute = self._absolute(path)
        folder, name = posixpath.split(absolute)
        if not name or name in (".", ".."):
            raise FileRefused(f"{path}: not a file name")
        dir_fd, _ = self.open_dir(folder if self.root is not None else folder or "/")
        return dir_fd, name, absolute

    def change(self, path: str) -> str:
        fd, absolute = self.open_dir(path or ("/" if self.root is not None else "~"))
        os.close(fd)
        self.cwd = absolute
        return absolute


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "link"
    return "other"


def _entry(name: str, info: os.stat_result) -> dict[str, Any]:
    return {
        "name": name,
        "type": _kind(info.st_mode),
        "size": info.st_size,
        "mode": stat.S_IMODE(info.st_mode),
        "mtime": info.st_mtime,
    }


def _display(name: str) -> str:
    """A name for display: an undecodable byte (os.fsdecode's lone surrogate) as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


@dataclass
class _Upload:
    put: Put
    dir_fd: int
    name: str
    shown: str
    fd: int
    partial: int
    block_size: int
    states: list[Hash]
    blocks: list[str]
    reserved: int
    old_mode: int | None = None
    old_size: int = 0  # of the file the upload replaces: freed from the quota once it has
    whole: Hash | None = None  # the SHA-256 so far, once PUT_FROM said where data starts
    position: int = 0
    resumed_from: int = 0
    done: bool = False


class FileService:
    """One connection's file requests: PUT, GET and FS, one at a time."""

    def __init__(self, session: PrefixedSession) -> None:
        # Weak: the session owns this service, and a strong reference back made each
        # connection a reference cycle, freed only by the cyclic GC (pauses under a flood).
        self.session: PrefixedSession = weakref.proxy(session)
        self.account: Account | None = None
        self._tree: Tree | None = None
        self._upload: _Upload | None = None

    @property
    def tree(self) -> Tree:
        if self._tree is None:
            account = self.account
            if account is not None and account.transfer_only:
                self._tree = Tree(account.home, account.home)
            else:
                self._tree = Tree(None, self.session.cwd)
        if not self._tree.confined:
            self._tree.cwd = self.session.cwd  # a sticky cd moves file requests too
        return self._tree

    @property
    def usage(self) -> Usage | None:
        account = self.account
        if account is None or account.quota is None:
            return None
        return Usage.of(account.home, account.quota)

    async def handle(self, message: Message) -> None:
        """Answer one message of a file request; FILE_ERROR for what cannot be done."""
        session = self.session
        # A transfer is not idle, but one whose client stops sending is, after the same time.
        session._arm_timer(session.config.idle_timeout, "no transfer data for {:g}s")
        try:
            if isinstance(message, Put):
                await self._put(message)
            elif isinstance(message, PutFrom):
                self._put_from(message)
            elif isinstance(message, FileData):
                self._data(message)
            elif isinstance(message, FileEnd):
                await self._end(message)
            elif isinstance(message, Get):
                await self._get(message)
            elif isinstance(message, Fs):
                await self._fs(message)
        except FileRefused as exc:
            log.info("%s: file request refused: %s", self.session.peer, exc.reason)
            self._abandon(delete=False)
            await self.session.send(FileError(exc.reason, kept=exc.kept))

    def close(self) -> None:
        """The connection ends: an upload under way keeps its partial file for a resume."""
        upload = self._upload
        if upload is not None and not upload.done:
            kept = upload.position if upload.whole is not None else upload.partial
            log.info("%s: put %s interrupted: %d bytes kept", self.session.peer, upload.shown, kept)
        self._abandon(delete=False)

    # ---------------------------------------------------------------------------- upload

    async def _put(self, put: Put) -> None:
        dir_fd, name, shown = self.tree.open_parent(put.path)
        try:
            upload = await self._open_upload(put, dir_fd, name, shown)
        except BaseException:
            os.close(dir_fd)
            raise
        self._upload = upload
        log.info("%s: put %s (%s bytes, %d kept)", self.session.peer, shown, put.size, upload.partial)
        await self.session.send(
            PutReady(upload.partial, upload.block_size if upload.partial else None, upload.blocks)
        )

    async def _open_upload(self, put: Put, dir_fd: int, name: str, shown: str) -> _Upload:
        old_mode, old_size = None, 0
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise FileRefused(_os_reason(shown, exc)) from None
        else:
            if stat.S_ISDIR(info.st_mode):
                raise FileRefused(f"{shown}: is a directory")
            if stat.S_ISLNK(info.st_mode) and self.tree.confined:
                raise FileRefused(f"{shown}: symbolic links are not followed here")
            old_mode = stat.S_IMODE(info.st_mode)
            old_size = info.st_size if stat.S_ISREG(info.st_mode) else 0
        part = partial_name(name)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(part, flags, 0o600, dir_fd=dir_fd)
        except OSError as exc:
            raise FileRefused(_os_reason(shown, exc)) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO: it cannot be truncated or resumed
                raise FileRefused(f"{shown}: its partial file is not a regular file")
            # Locked, and still the file under that name (not one renamed into place by the
            # upload that held the lock a moment ago).
            if (
                not lock_partial(fd)
                or os.fstat(fd).st_ino != os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_ino
            ):
                raise FileRefused(f"{shown} is being uploaded by another transfer; try again when it is done")
            partial = os.fstat(fd).st_size
            if not put.resume or (put.size is not None and partial > put.size):
                self._grew(-partial)
                os.ftruncate(fd, 0)
                partial = 0
            reserved = 0
            usage = self.usage
            if usage is not None and put.size is not None:
                reserved = put.size - partial
                if not usage.reserve(reserved):
                    if partial == 0:
                        os.unlink(part, dir_fd=dir_fd)  # refused before the first byte: no trace
                    raise FileRefused(
                        f"{shown}: {put.size} bytes would exceed the quota "
                        f"({usage.used} of {usage.quota} bytes used)",
                        kept=partial,
                    )
            block_size = block_size_for(partial)
            try:
                blocks, states = await asyncio.to_thread(hash_blocks, fd, partial, block_size)
            except BaseException as exc:
                if usage is not None:
                    usage.release(reserved)
                # The partial file cannot be read, or was cut short by someone else meanwhile:
                # this PUT is refused, the connection goes on.
                if isinstance(exc, TransferError):
                    raise FileRefused(
                        f"{shown}: its partial file shrank while it was being read; try again"
                    ) from None
                if isinstance(exc, OSError):
                    raise FileRefused(
                        f"{shown}: cannot read its partial file: {exc.strerror or exc}"
                    ) from None
                raise
        except BaseException:
            os.close(fd)
            raise
        return _Upload(
            put, dir_fd, name, shown, fd, partial, block_size, states, blocks, reserved, old_mode, old_size
        )

    def _current(self, what: str) -> _Upload:
        upload = self._upload
        if upload is None or upload.done:
            raise RemoteProtocolError(f"{what} without a PUT")
        return upload

    def _put_from(self, message: PutFrom) -> None:
        upload = self._current("PUT_FROM")
        if upload.whole is not None:
            raise RemoteProtocolError("a second PUT_FROM")
        whole = resume_state(upload.partial, upload.block_size, upload.states, message.offset)
        if whole is None:
            raise RemoteProtocolError(f"PUT_FROM offset {message.offset} is not one PUT_READY offered")
        os.ftruncate(upload.fd, message.offset)
        self._grew(message.offset - upload.partial)
        upload.whole, upload.position, upload.states = whole, message.offset, []
        upload.resumed_from = message.offset

    def _data(self, message: FileData) -> None:
        upload = self._current("FILE_DATA")
        if upload.whole is None:
            raise RemoteProtocolError("FILE_DATA before PUT_FROM")
        count = len(message.data)
        size = upload.put.size
        if size is not None and upload.position + count > size:
            raise FileRefused(
                f"{upload.shown}: more data than the {size} bytes announced", kept=upload.position
            )
        usage = self.usage
        if usage is not None and size is None and not usage.reserve(count):
            raise FileRefused(
                f"{upload.shown}: the quota of {usage.quota} bytes is full", kept=upload.position
            )
        try:
            os.lseek(upload.fd, upload.position, os.SEEK_SET)
            write_all(upload.fd, message.data)
        except OSError as exc:
            os.ftruncate(upload.fd, upload.position)  # what part of this chunk went is unknown
            raise FileRefused(
                f"cannot write {upload.shown}: {exc.strerror or exc}", kept=upload.position
            ) from None
        finally:
            if usage is not None:
                usage.release(count)
                upload.reserved = max(0, upload.reserved - count)
        upload.whole.update(message.data)
        upload.position += count
        self._grew(count)

    async def _end(self, end: FileEnd) -> None:
        upload = self._current("FILE_END")
        if upload.whole is None:
            raise RemoteProtocolError("FILE_END before PUT_FROM")
        shown, position = upload.shown, upload.position
        if end.error is not None:
            raise FileRefused(f"the client gave up: {end.error}", kept=position)
        if end.size != position or (upload.put.size is not None and upload.put.size != position):
            raise FileRefused(
                f"{shown}: {position} bytes arrived, the client says {end.size} (announced {upload.put.size})",
                kept=position,
            )
        digest = upload.whole.hexdigest()
        if end.sha256.lower() != digest:
            self._abandon(delete=True)
            raise FileRefused(
                f"{shown}: SHA-256 mismatch (the client sent {end.sha256}, we wrote {digest}); "
                "the partial file is deleted"
            )
        put = upload.put
        try:
            mode = put.mode if put.mode is not None else upload.old_mode
            os.fchmod(upload.fd, mode if mode is not None else 0o666 & ~_umask())
            if put.mtime is not None:
                ns = int(put.mtime * 1e9)
                os.utime(upload.fd, ns=(ns, ns))
            await asyncio.to_thread(os.fsync, upload.fd)
            os.replace(
                partial_name(upload.name), upload.name, src_dir_fd=upload.dir_fd, dst_dir_fd=upload.dir_fd
            )
            await asyncio.to_thread(os.fsync, upload.dir_fd)
        except OSError as exc:
            raise FileRefused(f"cannot put {shown} in place: {exc.strerror or exc}", kept=position) from None
        upload.done = True
        self._grew(-upload.old_size)
        self._abandon(delete=False)
        log.info("%s: put %s done: %d bytes, sha256 %s", self.session.peer, shown, position, digest)
        await self.session.send(FileDone(position, digest, resumed_from=upload.resumed_from))

    def _grew(self, count: int) -> None:
        usage = self.usage
        if usage is not None:
            usage.grew(count)

    def _abandon(self, *, delete: bool) -> None:
        """Close the upload under way (its partial file kept, or deleted) and free its quota."""
        upload, self._upload = self._upload, None
        if upload is None:
            return
        usage = self.usage
        if usage is not None:
            usage.release(upload.reserved)
        if delete:
            try:
                os.unlink(partial_name(upload.name), dir_fd=upload.dir_fd)
                self._grew(-upload.position)
            except OSError:
                pass
        os.close(upload.fd)  # releases the lock
        os.close(upload.dir_fd)

    # -------------------------------------------------------------------------- download

    async def _get(self, get: Get) -> None:
        tree = self.tree
        dir_fd, name, shown = tree.open_parent(get.path)
        try:
            # O_NONBLOCK: opening a FIFO to read waits for a writer, and this is the event loop
            # (it changes nothing for a regular file; _send_file refuses anything else).
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (os.O_NOFOLLOW if tree.confined else 0)
            try:
                fd = os.open(name, flags, dir_fd=dir_fd)
            except OSError as exc:
                raise FileRefused(_os_reason(shown, exc)) from None
        finally:
            os.close(dir_fd)
        try:
            await self._send_file(get, fd, shown)
        finally:
            os.close(fd)

    async def _send_file(self, get: Get, fd: int, shown: str) -> None:
        session = self.session
        before = os.fstat(fd)
        if stat.S_ISDIR(before.st_mode):
            raise FileRefused(f"{shown}: is a directory")
        if not stat.S_ISREG(before.st_mode):
            raise FileRefused(f"{shown}: not a regular file")
        size = before.st_size
        offset, whole = await asyncio.to_thread(
            first_difference, fd, size, get.partial, get.block_size or 0, get.blocks
        )
        log.info("%s: get %s (%d bytes, from %d)", session.peer, shown, size, offset)
        await session.send(GetReady(size, offset, mode=stat.S_IMODE(before.st_mode), mtime=before.st_mtime))
        session.writer.transport.set_write_buffer_limits(high=4 * CHUNK_SIZE, low=CHUNK_SIZE)
        position = offset
        while position < size:
            data = os.pread(fd, min(CHUNK_SIZE, size - position), position)
            if not data:
                raise FileRefused(f"{shown} shrank while it was being sent; try again")
            whole.update(data)
            await session.send(FileData(data))
            if session._ending():
                return
            position += len(data)
            session._arm_timer(session.config.idle_timeout, "no transfer data for {:g}s")
        after = os.fstat(fd)
        if after.st_size != size or after.st_mtime_ns != before.st_mtime_ns:
            raise FileRefused(f"{shown} changed while it was being sent; try again")
        await session.send(FileEnd(size, whole.hexdigest()))

    # -------------------------------------------------------------------- file operations

    async def _fs(self, request: Fs) -> None:
        tree, op, path = self.tree, request.op, request.path or ""
        if op == "pwd":
            await self.session.send(FsResult(cwd=tree.cwd))
        elif op == "cd":
            cwd = tree.change(path)
            self.session.previous_cwd, self.session.cwd = self.session.cwd, cwd
            await self.session.send(FsResult(cwd=cwd))
        elif op == "ls":
            await self.session.send(await asyncio.to_thread(_ls, tree, path, request.after))
        elif op == "stat":
            await self.session.send(FsResult(cwd=tree.cwd, entries=[_stat(tree, path)]))
        elif op == "df":
            usage = Usage.of(self.account.home, self.account.quota) if self.account is not None else None
            if usage is None:
                raise FileRefused("no quota: this server has no user accounts")
            await self.session.send(FsResult(cwd=tree.cwd, used=usage.used, quota=usage.quota))
        else:
            await self._change(tree, op, path)

    async def _change(self, tree: Tree, op: str, path: str) -> None:
        dir_fd, name, shown = tree.open_parent(path)
        try:
            if op == "mkdir":
                os.mkdir(name, 0o777, dir_fd=dir_fd)
            elif op == "rmdir":
                os.rmdir(name, dir_fd=dir_fd)
            else:  # rm
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    raise FileRefused(f"{shown}: is a directory (rmdir removes an empty one)")
                os.unlink(name, dir_fd=dir_fd)
                if stat.S_ISREG(info.st_mode):
                    self._grew(-info.st_size)
        except OSError as exc:
            raise FileRefused(_os_reason(shown, exc)) from None
        finally:
            os.close(dir_fd)
        log.info("%s: %s %s", self.session.peer, op, shown)
        await self.session.send(FsResult(cwd=tree.cwd))


def _ls(tree: Tree, path: str, after: str | None) -> FsResult:
    """The FS_RESULT of ``ls`` *path* (the page after the name *after*): run on a thread (a
    stat of thousands of entries, and their encoding, would keep the event loop from
    everyone else for milliseconds)."""
    entries, truncated = _listing(tree, path, after)
    return _fitting(FsResult(cwd=tree.cwd, entries=entries, truncated=truncated))


def _listing(tree: Tree, path: str, after: str | None) -> tuple[list[dict[str, Any]], bool | None]:
    """The entries of *path* whose names sort after *after*, sorted by name, at most
    MAX_LISTING; and True if more follow (None if not: the FS_RESULT leaves it out)."""
    fd, shown = tree.open_dir(path)
    try:
        names = sorted((_display(name), name) for name in os.listdir(fd))
        start = 0 if after is None else bisect.bisect_right([shown_name for shown_name, _ in names], after)
        entries: list[dict[str, Any]] = []
        for position in range(start, len(names)):
            if len(entries) >= MAX_LISTING:
                return entries, True
            shown_name, name = names[position]
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # gone meanwhile
            entries.append(_entry(shown_name, info))
        return entries, None
    except OSError as exc:
        raise FileRefused(_os_reason(shown, exc)) from None
    finally:
        os.close(fd)


def _fitting(result: FsResult) -> FsResult:
    """*result*, its entries cut (from the end) until its payload fits in MAX_LISTING_BYTES."""
    entries = list(result.entries or ())
    size = len(encode_message(result))
    while size > MAX_LISTING_BYTES:
        keep = min(len(entries) - 1, len(entries) * MAX_LISTING_BYTES * 9 // (size * 10))
        entries = entries[: max(keep, 0)]
        result = FsResult(cwd=result.cwd, entries=entries, truncated=True)
        size = len(encode_message(result))
    return result


def _stat(tree: Tree, path: str) -> dict[str, Any]:
    absolute = tree._absolute(path or ".")
    if not posixpath.basename(absolute):  # the root: it has no parent to look in
        fd, _ = tree.open_dir(path or ".")
        try:
            return _entry(".", os.fstat(fd))
        finally:
            os.close(fd)
    dir_fd, name, shown = tree.open_parent(path)
    try:
        follow = not tree.confined
        return _entry(name, os.stat(name, dir_fd=dir_fd, follow_symlinks=follow))
    except OSError as exc:
        raise FileRefused(_os_reason(shown, exc)) from None
    finally:
        os.close(dir_fd)


@functools.cache
def _umask() -> int:
    """The process's umask, read once (reading it means setting it: not on every upload)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
