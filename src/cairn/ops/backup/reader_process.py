"""Small files read in a process of the backup's own, beside the walk.

A backup of many small files is bound by the Python work done per file (the walk's lstat and
extended attributes, the node and the tree, then the file's open, read, hash, compression,
encryption and place in a pack): one interpreter runs it on one core, whatever threads it
has. So the walk stays in the backup's process and the small files' batches go to a child,
forked when the walk starts (it shares the index's pages with the backup, read only), which
reads, chunks, deduplicates, compresses and encrypts them and seals them into data packs of its
own, exactly as the backup's writer would. It uploads nothing: each sealed pack goes back
through a pipe to the backup's writer, which stores it with its own packs (its connections,
bandwidth limit, request counts, retries and object lock all apply), journals it and lists it
in its index objects (repo/writer.py, ``store_sealed``).

The child knows the index as it was when forked, and the blobs it sealed itself; it does not
know the blobs the backup stores meanwhile (its trees, and its large files' chunks, read by
the backup's own thread), nor the backup those of the child until the end. A blob both store
in the same run (a small file's content that is also, at the same boundaries, a chunk of a
large one) is stored twice: a cost in space that the next prune takes back, never a loss.

The child opens each file by its path, as the walk named it, and reads it only if it is the
file the walk saw (its device and inode: file_saver.FileSaver._open); a file whose path is
beyond what the system opens in one call is read by the backup itself (archiver.py). The child
ignores interrupts (the backup handles them and ends the child) and ends when its pipe closes.

Messages from the backup: ``("batch", n, items)`` and ``("flush",)``. From the child:
``("read", n, results)``, ``("pack", columns)`` followed by the pack's bytes, ``("flushed",)``,
``("failed", message)``.
"""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
import warnings
from concurrent.futures import Future
from multiprocessing.connection import Connection, Pipe
from typing import Any

from cairn.core.errors import CairnError
from cairn.ops.backup.file_saver import FileItem, FileResult, FileSaver, Seen
from cairn.repo.index import PackColumns, PackRecord
from cairn.repo.packer import Packer
from cairn.repo.writer import Writer
from cairn.storage.base import Content, SpooledContent

# paths at least this long are read by the backup itself, relative to their open directory:
# opened whole by the child they may be past PATH_MAX (4,096 bytes with its terminating NUL)
LONG_PATH = 4000


class ReaderFailed(CairnError):
    """The reading process failed, or ended before the backup."""


class ReaderProcess:
    """The backup's side: hands batches of small files to the child and takes back their
    results and the packs it sealed (a thread receives them)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        # the child's messages come through a socket, which can carry the descriptor of a pack
        # built in a temporary file (its messages are framed, its descriptors sent between them)
        self._socket, child_socket = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        from_child = Connection(os.dup(self._socket.fileno()), writable=False)
        child_out = Connection(os.dup(child_socket.fileno()), readable=False)
        child_in, to_child = Pipe(duplex=False)
        pending = writer.pending()  # (taken here: the writer's lock is no use in the child)
        gc.freeze()  # the child's collections do not touch (and so copy) the backup's objects
        try:
            # forked with the index's lock held: no thread of the backup is midway through
            # changing it (a pack being added, the arrays being sorted anew)
            with writer.repo.index.held(), warnings.catch_warnings():
                # the child uses no lock another thread of the backup may hold (see _child)
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
            if pid == 0:  # pragma: no cover (the child; its work is measured by its results)
                from_child.close()
                to_child.close()
                self._socket.close()
                _child(writer, pending, child_in, child_out, child_socket)
        finally:
            gc.unfreeze()
        child_in.close()
        child_out.close()
        child_socket.close()
        self.pid = pid
        self._in = from_child
        self._out = to_child
        self._lock = threading.Lock()
        self._batches: dict[int, Future[list[FileResult | OSError]]] = {}
        self._next = 0
        self._error: BaseException | None = None
        self._flushed = threading.Event()
        self._ended = False
        self._receiver = threading.Thread(
            target=self._receive, name="cairn-reader-results", daemon=True
        )
        self._receiver.start()

    def submit(self, items: list[FileItem]) -> Future[list[FileResult | OSError]]:
        """Has the child read a batch; its future yields a result (or OSError) per file."""
        future: Future[list[FileResult | OSError]] = Future()
        with self._lock:
            if self._error is not None:
                raise self._error
            n = self._next
            self._next += 1
            self._batches[n] = future
        for _, _, where in items:
            if where is not None:  # (held while the walk read small files itself)
                where[0].release()
        try:
            # paths and a few integers: a status object would take far longer to pickle
            self._out.send(("batch", n, [(p, *Seen.of(st)) for p, st, _ in items]))
        except OSError as e:  # the child is gone: its error, if the receiver has it
            self._receiver.join()
            raise self._error or ReaderFailed(f"the reading process ended: {e}") from None
        return future

    def finish(self) -> None:
        """Once every batch is read: the child seals its open packs, hands them over and
        ends; every pack it sealed is then with the writer."""
        try:
            self._out.send(("flush",))
        except OSError:
            pass  # gone: the receiver says why
        self._receiver.join()
        self._end()
        if self._error is not None:
            raise self._error
        if not self._flushed.is_set():
            raise ReaderFailed("the reading process ended before it stored every pack")

    def abort(self) -> None:
        """The backup is abandoned: the child is ended, whatever it was doing."""
        if self._ended:
            return
        self._kill()
        self._receiver.join()
        self._end()

    def _kill(self) -> None:
        """Ends the child now (it is waited for by ``_end``, so its pid is still its own)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._out.close()
        self._in.close()
        self._socket.close()
        os.waitpid(self.pid, 0)

    def _receive(self) -> None:
        try:
            while True:
                try:
                    message = self._in.recv()
                except EOFError:
                    raise ReaderFailed("the reading process ended unexpectedly") from None
                kind = message[0]
                if kind == "read":
                    with self._lock:
                        future = self._batches.pop(message[1])
                    future.set_result(
                        [r if isinstance(r, OSError) else FileResult(*r) for r in message[2]]
                    )
                elif kind == "pack":
                    data = self._in.recv_bytes()
                    self._writer.store_sealed(message[1], data)
                elif kind == "spooled":  # the temporary file the pack was built in
                    _, fds, _, _ = socket.recv_fds(self._socket, 1, 1)
                    if len(fds) != 1:
                        raise ReaderFailed("the reading process handed over no pack file")
                    spooled = SpooledContent(fds[0], message[2], message[3])
                    self._writer.store_sealed(message[1], spooled)
                elif kind == "flushed":
                    self._flushed.set()
                    return
                else:
                    raise ReaderFailed(f"the reading process failed: {message[1]}")
        except BaseException as e:
            with self._lock:
                self._error = self._error or e
                waiting, self._batches = list(self._batches.values()), {}
            self._kill()  # it may be waiting to hand over a pack
            for future in waiting:
                future.set_exception(self._error)


class _Sealer(Packer):
    """The child's packer: a finished pack goes to the backup, not to the store."""

    def __init__(self, send: _Sender, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._send = send

    def _deliver(self, record: PackRecord | PackColumns, data: Content) -> None:
        assert isinstance(record, PackRecord)
        # with its index entry: encoded here, not by the backup, whose walk it would slow
        self._send.pack(PackColumns.of(record, encoded=True), data)


class _SealingWriter(Writer):
    """The child's writer: packs sealed as the backup's writer would, handed over, and known
    to this process's index (so that it stores each of its blobs once); no index object and no
    journal of its own (the backup's writer keeps both for these packs). The blobs in the
    backup's packs not stored yet when it was forked count as known: the backup stores them."""

    def __init__(self, parent: Writer, pending: list[bytes], send: _Sender) -> None:
        super().__init__(
            parent.repo,
            uploads=1,
            first_pack_size=parent.first_pack_size,
            spool=parent.spool,
            dry_run=False,
        )
        self._send = send
        self._pending = set(pending)

    def _new_packer(self) -> Packer:
        repo = self.repo
        return _Sealer(
            self._send,
            repo.storage,
            repo.key.encryption,
            repo.config.pack_size,
            self._pack_stored,
            uploads=1,
            spool=self.spool,
            first_pack_size=self.first_pack_size,
        )

    def _write_index(self) -> None:
        with self._lock:
            self._unindexed = []


class _Sender:
    """The child's end of the pipe to the backup: whole messages, from either of its threads
    (the reading one, and the one that hands over sealed packs)."""

    def __init__(self, conn: Connection, sock: socket.socket) -> None:
        self._conn = conn
        self._socket = sock  # the connection's socket: for a pack file's descriptor
        self._lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.send(message)

    def pack(self, columns: PackColumns, data: Content) -> None:
        with self._lock:
            if isinstance(data, SpooledContent):
                # the file itself: the backup reads the pack from it as it uploads it
                self._conn.send(("spooled", columns, data.size, data.offset))
                socket.send_fds(self._socket, [b"\0"], [data.fd])
                return
            self._conn.send(("pack", columns))
            self._conn.send_bytes(data)


def _child(
    parent: Writer,
    pending: list[bytes],
    conn_in: Connection,
    conn_out: Connection,
    sock: socket.socket,
) -> None:
    """The child's whole life; it never returns. What it uses of what it was forked with is
    the repository's key, configuration and index (given a lock of its own), all read only,
    and the list of blobs the backup's packs hold, taken before the fork; everything else
    (threads, locks, buffers) it makes anew."""
    code = 1
    send = _Sender(conn_out, sock)
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        parent.repo.index.after_fork()
        with _SealingWriter(parent, pending, send) as writer:
            saver = FileSaver(writer, xattrs=True)
            while True:
                try:
                    message = conn_in.recv()
                except EOFError:
                    break  # the backup is gone
                if message[0] == "batch":
                    items: list[FileItem] = [(p, Seen(*seen), None) for p, *seen in message[2]]
                    results = saver.save_files(items)
                    # as tuples: a dataclass takes far longer to pickle
                    out = [r if isinstance(r, OSError) else r.as_tuple() for r in results]
                    send.send(("read", message[1], out))
                    continue
                writer.flush()
                send.send(("flushed",))
                code = 0
                break
    except BaseException as e:  # told to the backup, whatever it is
        try:
            send.send(("failed", f"{type(e).__name__}: {e}"))
        except BaseException:  # the backup is gone: nobody to tell
            pass
    finally:
        os._exit(code)
