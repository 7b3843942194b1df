"""``fdatasync(2)`` that does not stop the event loop: Linux AIO's ``FDSYNC``.

The message writer commits its SQLite batches on the event loop (a few C
calls; no thread hand-offs, docs/performance.md).  At ``synchronous=FULL``
SQLite fsyncs the WAL inside COMMIT, and the loop stood still for the whole
fsync: at 4,000 msg/s a quarter of the loop's time went to waiting for the
disk, time in which no frame was read, acknowledged or delivered.

Here the writer's connection commits at ``synchronous=NORMAL`` (the WAL is
written, not synced) and asks for the WAL's ``fdatasync`` through the
kernel's AIO interface (``io_submit`` with ``IOCB_CMD_FDSYNC``).  The kernel
runs it on one of its own workers and signals an ``eventfd`` that the loop
watches, so the loop goes on with other sockets meanwhile, and no thread of
ours has to win the GIL back from a busy loop to report it (a sync thread
waited up to a switch interval, 5 ms, for that; the ``committhread``
experiment in docs/performance.md).  The writer still acknowledges and
delivers a batch only once its sync is done: nothing is acknowledged before
it is durable.

Syncs are grouped: while one runs, everyone who asks waits for the next one
(writes made after a running ``fdatasync`` began need not be covered by it),
which starts as soon as the running one ends.  :meth:`AsyncFdatasync.open`
returns ``None`` where the interface is missing (another OS, a kernel or
sandbox without AIO); the caller then keeps syncing inside COMMIT.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import platform
import sys

log = logging.getLogger("miaohui.core.aiosync")

# io_setup, io_destroy, io_getevents, io_submit
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB_CMD_FDSYNC = 3
_IOCB_FLAG_RESFD = 1


class _Iocb(ctypes.Structure):  # <linux/aio_abi.h>, little-endian
    _fields_ = [
        ("aio_data", ctypes.c_uint64),
        ("aio_key", ctypes.c_uint32),
        ("aio_rw_flags", ctypes.c_int32),
        ("aio_lio_opcode", ctypes.c_uint16),
        ("aio_reqprio", ctypes.c_int16),
        ("aio_fildes", ctypes.c_uint32),
        ("aio_buf", ctypes.c_uint64),
        ("aio_nbytes", ctypes.c_uint64),
        ("aio_offset", ctypes.c_int64),
        ("aio_reserved2", ctypes.c_uint64),
        ("aio_flags", ctypes.c_uint32),
        ("aio_resfd", ctypes.c_uint32),
    ]


class _IoEvent(ctypes.Structure):
    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64), ("res", ctypes.c_int64),
                ("res2", ctypes.c_int64)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class AsyncFdatasync:
    """Group ``fdatasync`` of one file, completed on the event loop.

    :meth:`sync` returns a future that is resolved once everything written to
    the file before the call is on disk (or fails with the ``OSError``).  Use
    from the loop's thread only.
    """

    def __init__(self, path: str, loop: asyncio.AbstractEventLoop, libc, nrs: tuple[int, int, int, int]) -> None:
        self.path = path
        self._loop = loop
        self._libc = libc
        self._nr_setup, self._nr_destroy, self._nr_getevents, self._nr_submit = nrs
        self._fd = -1
        self._ino = -1
        self._efd = -1
        self._ctx = ctypes.c_ulong(0)
        self._iocb = _Iocb()
        self._ptrs = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(self._iocb))
        self._events = (_IoEvent * 4)()
        self._no_wait = _Timespec(0, 0)
        self._inflight: asyncio.Future | None = None
        self._next: asyncio.Future | None = None
        self.submitted = 0  # syncs handed to the kernel
        self.inline = 0  # syncs done on the loop because AIO refused one

    @classmethod
    def open(cls, path: str, loop: asyncio.AbstractEventLoop | None = None) -> AsyncFdatasync | None:
        """An instance for ``path``, or ``None`` (with the reason logged) where
        the kernel's AIO cannot sync it; ``path`` must exist."""
        nrs = _SYSCALLS.get(platform.machine())
        if not sys.platform.startswith("linux") or nrs is None or not hasattr(os, "eventfd"):
            log.info("no Linux AIO here: the WAL is synced inside COMMIT")
            return None
        self = cls(path, loop or asyncio.get_running_loop(), ctypes.CDLL(None, use_errno=True), nrs)
        try:
            self._open_fd()
            if self._libc.syscall(self._nr_setup, 4, ctypes.byref(self._ctx)) != 0:
                raise OSError(ctypes.get_errno(), "io_setup")
            self._efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._iocb.aio_lio_opcode = _IOCB_CMD_FDSYNC
            self._iocb.aio_flags = _IOCB_FLAG_RESFD
            self._iocb.aio_resfd = self._efd
            # One sync, waited for here: some filesystems refuse FDSYNC (EINVAL).
            if not self._submit():
                raise OSError(ctypes.get_errno(), "io_submit")
            got = self._libc.syscall(self._nr_getevents, self._ctx, 1, 1, self._events, None)
            if got != 1 or self._events[0].res < 0:
                raise OSError(-self._events[0].res if got == 1 else ctypes.get_errno(), "io_getevents")
            os.eventfd_read(self._efd)
        except OSError as e:
            log.info("Linux AIO cannot sync %s (%s): the WAL is synced inside COMMIT", os.path.basename(path),
                     e.strerror or e)
            self.close()
            return None
        self._loop.add_reader(self._efd, self._on_ready)
        return self

    def _open_fd(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._ino = fd, os.fstat(fd).st_ino
        self._iocb.aio_fildes = fd

    def _submit(self) -> bool:
        return self._libc.syscall(self._nr_submit, self._ctx, 1, self._ptrs) == 1

    @property
    def busy(self) -> bool:
        return self._inflight is not None

    def sync(self) -> asyncio.Future:
        """A future resolved once what was written to the file so far is durable.
        Callers that share it with others await it through ``asyncio.shield``."""
        if self._inflight is not None:
            # The running sync may have begun before this caller's writes.
            if self._next is None:
                self._next = self._loop.create_future()
            return self._next
        fut = self._loop.create_future()
        self._start(fut)
        return fut

    def _start(self, fut: asyncio.Future) -> None:
        try:
            if os.stat(self.path).st_ino != self._ino:  # replaced (SQLite never does while we hold it open)
                self._open_fd()
            if self._submit():
                self.submitted += 1
                self._inflight = fut
                return
            # AIO refused this one (EAGAIN: the kernel's AIO limit): sync here, once.
            self.inline += 1
            os.fdatasync(self._fd)
        except OSError as e:
            if not fut.done():
                fut.set_exception(e)
            return
        if not fut.done():
            fut.set_result(None)

    def _on_ready(self) -> None:
        try:
            os.eventfd_read(self._efd)
        except BlockingIOError:
            return
        got = self._libc.syscall(self._nr_getevents, self._ctx, 0, len(self._events), self._events,
                                 ctypes.byref(self._no_wait))
        for i in range(max(0, got)):
            res = self._events[i].res
            fut, self._inflight = self._inflight, None
            if fut is None or fut.done():
                continue
            if res < 0:
                fut.set_exception(OSError(-res, os.strerror(-res), self.path))
            else:
                fut.set_result(None)
        if self._inflight is None and self._next is not None:
            fut, self._next = self._next, None
            self._start(fut)

    def close(self) -> None:
        """Stop watching.  A sync still running is waited for and its future
        resolved; one still queued is done here, on the caller's thread."""
        if self._efd >= 0:
            try:
                self._loop.remove_reader(self._efd)
            except Exception:  # the loop is closed already
                pass
        if self._inflight is not None and self._ctx.value:
            got = self._libc.syscall(self._nr_getevents, self._ctx, 1, 1, self._events, None)
            fut, self._inflight = self._inflight, None
            res = self._events[0].res if got == 1 else -(ctypes.get_errno() or 5)
            if not fut.done():
                if res < 0:
                    fut.set_exception(OSError(-res, os.strerror(-res), self.path))
                else:
                    fut.set_result(None)
        if self._next is not None:
            fut, self._next = self._next, None
            try:
                os.fdatasync(self._fd)
            except OSError as e:
                if not fut.done():
                    fut.set_exception(e)
            else:
                if not fut.done():
                    fut.set_result(None)
        if self._ctx.value:
            self._libc.syscall(self._nr_destroy, self._ctx)
            self._ctx = ctypes.c_ulong(0)
        for fd in (self._efd, self._fd):
            if fd >= 0:
                os.close(fd)
        self._efd = self._fd = -1
