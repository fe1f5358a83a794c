"""File transfers, the client's side: ``client.put()``, ``client.get()`` and the file operations.

The wire exchange is in docs/PROTOCOL.md (section 5b). In short, for an upload::

    PUT (path, size) ->             <- PUT_READY (the partial kept, as block hashes)
    PUT_FROM (offset) -> FILE_DATA* -> FILE_END (size, sha256)
                                    <- FILE_DONE (size, sha256, resumed_from), or FILE_ERROR

and for a download, GET (path, the local partial as block hashes) <- GET_READY (size,
offset) <- FILE_DATA* <- FILE_END (size, sha256). The receiver writes to a partial file
(:func:`partial_name`) in the target directory and renames it into place only once the
SHA-256 of the whole file matches, so a reader never sees half a file and a failed
transfer never destroys the old one. An interrupted transfer leaves its partial file; the
next attempt describes it in block hashes, the sender compares them with its own file and
sends from the first block that differs (rsync's ``--append-verify``, but per block: a
changed source costs only the blocks from the change on, and a kept prefix is never
trusted unchecked, unlike ``sftp reget``).

The helpers at the top (block hashes, partial names) are shared with rcmd/server/files.py.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import ConnectionClosed, RemoteFileError, ServerError, TransferError
from .framing import NEED_DATA, Status
from .messages import (
    MAX_BLOCKS,
    MAX_DATA_CHUNK,
    Error,
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
    data_chunk_size,
)

if TYPE_CHECKING:
    from .client import Client

    Hash = hashlib._Hash

#: FILE_DATA carries at most this much: as STDOUT does, so a client's 256 KiB frame floor holds.
#: An upload sends less to a server that announces a smaller frame limit (data_chunk_size());
#: to one that announces none, this (docs/PROTOCOL.md §2: what the spec always promised).
CHUNK_SIZE = MAX_DATA_CHUNK
#: While more than this waits in the client's outbox, an upload stops reading its file: memory
#: stays flat whatever the file's size (the socket's own buffer comes on top).
OUTBOX_HIGH_WATER = 4 * CHUNK_SIZE
#: A partial file is described in blocks of at least this size, doubled until at most
#: MAX_BLOCKS hashes cover it: 1 GiB kept is 1024 hashes of 1 MiB; 1 TiB, 1024 of 1 GiB.
MIN_BLOCK_SIZE = 1024 * 1024
#: Name of the file being written, beside its target: hidden, and recognisable as ours.
PARTIAL_SUFFIX = ".rcmd-part"

Progress = Callable[[int, int | None], None]


def partial_name(name: str) -> str:
    """The partial file for the file *name*, in the same directory (a rename within one
    file system is atomic; across file systems it would be a copy)."""
    return f".{name}{PARTIAL_SUFFIX}"


def block_size_for(length: int) -> int:
    """The block size that describes *length* bytes in at most MAX_BLOCKS hashes."""
    size = MIN_BLOCK_SIZE
    while size * MAX_BLOCKS < length:
        size *= 2
    return size


def hash_blocks(fd: int, length: int, block_size: int) -> tuple[list[str], list[Hash]]:
    """The SHA-256 (hex) of each *block_size* block of the first *length* bytes of *fd* (the
    last block may be shorter), and the SHA-256 state of the whole prefix at each block
    boundary (``states[i]`` has hashed ``i`` blocks; ``states[-1]`` all of them).

    Raises OSError, or TransferError if the file is shorter than *length*.
    """
    blocks: list[str] = []
    whole = hashlib.sha256()
    states = [whole.copy()]
    for start in range(0, length, block_size):
        data = _read_exactly(fd, start, min(block_size, length - start))
        blocks.append(hashlib.sha256(data).hexdigest())
        whole.update(data)
        states.append(whole.copy())
    return blocks, states


def first_difference(
    fd: int, size: int, partial: int, block_size: int, blocks: Sequence[str]
) -> tuple[int, Hash]:
    """Where to start sending the file *fd* (*size* bytes) to a receiver that kept *partial*
    bytes described by *blocks*: the start of the first block that differs from ours, or
    *partial* when all match. Returns that offset and the SHA-256 state of the bytes before it.
    """
    whole = hashlib.sha256()
    if not _describes(partial, block_size, blocks) or partial > size:
        return 0, whole
    for index, expected in enumerate(blocks):
        start = index * block_size
        data = os.pread(fd, min(block_size, partial - start), start)
        if (
            len(data) != min(block_size, partial - start)
            or hashlib.sha256(data).hexdigest() != expected.lower()
        ):
            return start, whole
        whole.update(data)
    return partial, whole


def _describes(partial: int, block_size: int | None, blocks: Sequence[str]) -> bool:
    """Whether *blocks* of *block_size* cover exactly *partial* bytes."""
    if partial == 0 or not block_size:
        return False
    return len(blocks) == -(-partial // block_size)


def resume_state(partial: int, block_size: int | None, states: Sequence[Hash], offset: int) -> Hash | None:
    """The SHA-256 state of the first *offset* bytes of a partial file hashed by
    hash_blocks(), or None if *offset* is not a place the sender may start from (a block
    boundary within the partial, or its end)."""
    if offset == 0:
        return hashlib.sha256()
    if not block_size or offset > partial:
        return None
    if offset == partial:
        return states[-1].copy()
    if offset % block_size:
        return None
    return states[offset // block_size].copy()


def _read_exactly(fd: int, start: int, count: int) -> bytes:
    data = os.pread(fd, count, start)
    if len(data) != count:
        raise TransferError(f"the file shrank while it was being read (at byte {start + len(data)})")
    return data


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write() until all of *data* is written (a write may take only part)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def pwrite_all(fd: int, data: bytes | memoryview, position: int) -> None:
    """os.pwrite() at *position* until all of *data* is written (a write may take only part)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written


def lock_partial(fd: int) -> bool:
    """Take the exclusive lock that says "a transfer writes this partial file"; False if
    another one holds it (another connection, or another server process)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# ------------------------------------------------------------------------------ client


@dataclass(frozen=True)
class TransferResult:
    """A finished, verified transfer: *size* bytes, their SHA-256 (hex), and how many bytes
    were kept from an earlier attempt (0 for a fresh transfer)."""

    path: str
    size: int
    sha256: str
    resumed_from: int = 0


@dataclass(frozen=True)
class RemoteEntry:
    """One file or directory on the server, as ``ls`` and ``stat`` describe it."""

    name: str
    type: str  # "file", "dir", "link" or "other"
    size: int = 0
    mode: int = 0
    mtime: float = 0.0

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> RemoteEntry:
        return cls(
            name=str(item["name"]),
            type=str(item.get("type", "other")),
            size=int(item.get("size") or 0),
            mode=int(item.get("mode") or 0),
            mtime=float(item.get("mtime") or 0.0),
        )


def _require_files(client: Client) -> None:
    """Refuse, before sending anything, a server that does not offer file transfers."""
    if "files" not in (client.server_hello.extensions or ()):
        raise RemoteFileError(
            f"the server at {client._where} does not offer file transfers (no 'files' extension in its HELLO)"
        )


def _expect(client: Client, *types: type[Message]) -> Message:
    """The next message, which must be one of *types*; FILE_ERROR raises RemoteFileError."""
    event = client._next_event()
    if isinstance(event, FileError):
        raise RemoteFileError(event.reason, event.kept)
    if not isinstance(event, types):
        raise ConnectionClosed(f"unexpected {event.TYPE.name} from the server")  # pragma: no cover
    return event


def _poll(client: Client) -> Message | None:
    """A message that has already arrived, without waiting; None if there is none."""
    event = client._conn.next_event()
    if isinstance(event, Status):
        if event is NEED_DATA:
            return None
        raise ConnectionClosed("the server closed the connection")
    if isinstance(event, Error):
        raise ServerError(event.reason)
    return event


def put(
    client: Client,
    local: str | os.PathLike[str],
    remote: str,
    *,
    progress: Progress | None = None,
    resume: bool = True,
    preserve: bool = False,
) -> TransferResult:
    """Upload the file *local* to *remote* (see Client.put)."""
    _require_files(client)
    fd = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if stat.S_ISDIR(before.st_mode):
            raise IsADirectoryError(21, "Is a directory (use -r for directories)", os.fspath(local))
        if not stat.S_ISREG(before.st_mode):
            raise TransferError(f"{os.fspath(local)}: not a regular file")
        size = before.st_size
        if remote.endswith("/"):
            remote += os.path.basename(os.fspath(local))
        client._send(
            Put(
                remote,
                size=size,
                mode=stat.S_IMODE(before.st_mode) if preserve else None,
                mtime=before.st_mtime if preserve else None,
                resume=resume,
            )
        )
        try:
            ready = _expect(client, PutReady)
            assert isinstance(ready, PutReady)
            offset, whole = first_difference(fd, size, ready.partial, ready.block_size or 0, ready.blocks)
            client._send(PutFrom(offset))
            sent = _send_data(client, fd, offset, size, whole, progress)
            after = os.fstat(fd)
            changed = sent != size or after.st_size != size or after.st_mtime_ns != before.st_mtime_ns
            error = (
                f"{os.fspath(local)} changed while it was being sent; run the same command again"
                if changed
                else None
            )
            client._send(FileEnd(sent, whole.hexdigest(), error=error))
            done = _expect(client, FileDone)
        except KeyboardInterrupt:
            client.close()  # the server keeps the partial file: the same put resumes it
            raise
        assert isinstance(done, FileDone)
        if done.sha256 != whole.hexdigest() or done.size != sent:  # pragma: no cover - a broken server
            raise TransferError(
                f"the server reports SHA-256 {done.sha256} for {remote}, we sent {whole.hexdigest()}"
            )
        return TransferResult(remote, done.size, done.sha256, done.resumed_from)
    finally:
        os.close(fd)


def _send_data(
    client: Client, fd: int, offset: int, size: int, whole: Hash, progress: Progress | None
) -> int:
    """Send the file from *offset* to *size* in FILE_DATA frames, never more than
    OUTBOX_HIGH_WATER ahead of the socket; returns the bytes now sent in all (offset
    included). A FILE_ERROR that arrives meanwhile (quota, full disk) raises RemoteFileError."""
    position = offset
    chunk = data_chunk_size(client.server_hello, CHUNK_SIZE)
    if progress is not None:
        progress(position, size)
    while position < size:
        data = os.pread(fd, min(chunk, size - position), position)
        if not data:
            break  # the file shrank: FILE_END says so
        whole.update(data)
        client._send(FileData(data))
        position += len(data)
        while len(client._outbox) > OUTBOX_HIGH_WATER:
            client._wait_for_io(None)  # sends what the socket takes, reads what has come
            event = _poll(client)
            if isinstance(event, FileError):
                raise RemoteFileError(event.reason, event.kept)
            if event is not None:  # pragma: no cover - the protocol lets nothing else come now
                raise ConnectionClosed(f"unexpected {event.TYPE.name} during an upload")
        if progress is not None:
            progress(position, size)
    return position


def get(
    client: Client,
    remote: str,
    local: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    resume: bool = True,
    preserve: bool = False,
    fsync: bool = False,
) -> TransferResult:
    """Download *remote* to the file *local* (see Client.get)."""
    _require_files(client)
    target = os.fspath(local)
    if os.path.isdir(target):
        target = os.path.join(target, remote.rstrip("/").rsplit("/", 1)[-1])
    folder, name = os.path.split(os.path.abspath(target))
    dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if os.path.isdir(os.path.join(folder, name)):
            raise IsADirectoryError(21, "Is a directory", target)
        part = partial_name(name)
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        try:
            if not lock_partial(fd):
                raise TransferError(f"{target} is being downloaded by another transfer")
            if not resume:
                os.ftruncate(fd, 0)
            partial = os.fstat(fd).st_size
            block_size = block_size_for(partial)
            blocks, states = hash_blocks(fd, partial, block_size)
            client._send(
                Get(remote, partial=partial, block_size=block_size if partial else None, blocks=blocks)
            )
            try:
                where = (fd, dir_fd, part, name)
                resumed = (partial, block_size, states)
                return _receive(client, remote, where, resumed, progress, preserve=preserve, fsync=fsync)
            except KeyboardInterrupt:
                client.close()  # the partial file stays: the same get resumes it
                raise
            except RemoteFileError:
                if os.fstat(fd).st_size == 0:
                    os.unlink(part, dir_fd=dir_fd)  # nothing to resume: leave nothing behind
                raise
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def _receive(
    client: Client,
    remote: str,
    where: tuple[int, int, str, str],
    resumed: tuple[int, int, list[Hash]],
    progress: Progress | None,
    *,
    preserve: bool,
    fsync: bool,
) -> TransferResult:
    """The rest of a GET: GET_READY, the data, FILE_END; *where* is the partial file's
    (fd, dir_fd, partial name, final name), *resumed* what it held (bytes, block size, the
    hash states at each block boundary)."""
    fd, dir_fd, part, name = where
    partial, block_size, states = resumed
    ready = _expect(client, GetReady)
    assert isinstance(ready, GetReady)
    whole = resume_state(partial, block_size, states, ready.offset)
    if whole is None or ready.offset > ready.size:
        client.close()
        raise TransferError(f"the server sent {remote} from offset {ready.offset}, which we did not offer")
    os.ftruncate(fd, ready.offset)
    position = ready.offset
    if progress is not None:
        progress(position, ready.size)
    while True:
        try:
            event = _expect(client, FileData, FileEnd)
        except RemoteFileError as exc:
            raise RemoteFileError(exc.reason, position) from None
        if isinstance(event, FileEnd):
            break
        assert isinstance(event, FileData)
        if position + len(event.data) > ready.size:
            client.close()
            raise TransferError(
                f"the server sent more of {remote} than the {ready.size} bytes it announced", position
            )
        try:
            pwrite_all(fd, event.data, position)
        except OSError:
            client.close()  # a GET cannot be stopped half way: the connection goes
            raise
        whole.update(event.data)
        position += len(event.data)
        if progress is not None:
            progress(position, ready.size)
    digest = whole.hexdigest()
    if event.size != position or event.sha256.lower() != digest:
        os.unlink(part, dir_fd=dir_fd)  # bad bytes: nothing of it is worth resuming
        raise TransferError(
            f"{remote}: the received data does not match the server's SHA-256 "
            f"({position} bytes, {digest} here; {event.size} bytes, {event.sha256} there); nothing kept"
        )
    if fsync:
        os.fsync(fd)
    if preserve:
        if ready.mode is not None:
            os.fchmod(fd, ready.mode)
        if ready.mtime is not None:
            os.utime(fd, ns=(int(ready.mtime * 1e9), int(ready.mtime * 1e9)))
    else:
        os.fchmod(fd, 0o666 & ~_umask())
    os.replace(part, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    if fsync:
        os.fsync(dir_fd)  # the rename itself survives a crash
    return TransferResult(name, position, digest, ready.offset)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fs(client: Client, op: str, path: str | None = None, after: str | None = None) -> FsResult:
    """Send one FS request; its FS_RESULT, or RemoteFileError."""
    _require_files(client)
    client._send(Fs(op, path, after))
    result = _expect(client, FsResult)
    assert isinstance(result, FsResult)
    if result.cwd is not None:
        client.cwd = result.cwd
    return result
