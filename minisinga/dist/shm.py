"""Shared-memory communicator for processes spawned on one host (CPU tensors).

Rank 0 creates one POSIX shared-memory segment named after the group's token (from
`NcclIdHolder`); the others attach to it. The segment holds a header (world size, slot size,
a "poison" flag with a message), one record per rank (pid, state, barrier counter and the
collective it is in) and one data slot per rank.

Barriers need no atomics: each rank bumps only its own counter and waits until every
counter has reached the same value. Every wait checks the poison flag, whether the missing
ranks are still alive (their pid) or closed, and the timeout, so a dead or stuck peer gives a
`DistError` that names it, never a hang. Each collective also records (sequence number,
kind, bytes) and checks that all ranks agree, so ranks that drift apart (different models,
different world sizes) fail with a clear message. Written for x86-64 (total store order: a
rank that sees a peer's counter also sees the data written before it)."""

from __future__ import annotations

import atexit
import mmap
import os
import tempfile
import time
import weakref

import numpy as np

from .base import COLLECTIVE_KINDS, Backoff, DistError, HostCommunicator, disagreement

MAGIC = 0x6D736E67_73686D31  # "msng" "shm1"
MAX_RANKS = 1024
_G_MAGIC, _G_WORLD, _G_SLOT, _G_POISON = 0, 1, 2, 3
_MSG_OFF, _MSG_LEN = 64, 1024
_REC_OFF, _REC_FIELDS = 2048, 8
_PID, _STATE, _BAR, _SEQ, _KIND, _NBYTES, _WSIZE = range(7)
_JOINED, _CLOSED = 1, 2
HEADER = (_REC_OFF + MAX_RANKS * _REC_FIELDS * 8 + 4095) // 4096 * 4096
_LIVE: weakref.WeakSet[ShmCommunicator] = weakref.WeakSet()


def segment_path(token: str) -> str:
    """Where the group's segment lives: a file in /dev/shm (memory), else the temp dir."""
    d = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(d, f"minisinga_{token}")


class _Segment:
    """A shared file mapped into memory (no multiprocessing resource tracker involved)."""

    def __init__(self, path: str, size: int = 0):
        if size:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, size)
            except OSError:
                os.close(fd)
                os.unlink(path)
                raise
        else:
            fd = os.open(path, os.O_RDWR)
            size = os.fstat(fd).st_size
        try:
            self.buf = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        self.path, self.size = path, size

    def close(self) -> None:
        if self.buf is not None:
            self.buf.close()
            self.buf = None


def default_slot_bytes(world_size: int) -> int:
    """Per-rank slot size: $MINISINGA_SHM_SLOT_BYTES, else 16 MiB capped at a quarter of the
    free space of /dev/shm shared by all ranks (larger messages go in chunks)."""
    raw = os.environ.get("MINISINGA_SHM_SLOT_BYTES")
    if raw:
        n = int(raw)
    else:
        n = 16 << 20
        try:
            st = os.statvfs("/dev/shm")
            n = min(n, st.f_bavail * st.f_frsize // (4 * world_size))
        except OSError:
            pass
    return max(4096, n // 64 * 64)


def _alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


class ShmCommunicator(HostCommunicator):
    """Joins (or, as rank 0, creates) the shared-memory group `token` of `world_size` ranks.

    Args:
        token: the group's name, the same in every rank (`NcclIdHolder().token`).
        rank: this process's rank in [0, world_size).
        world_size: number of processes in the group.
        timeout: seconds any wait may last (default $MINISINGA_DIST_TIMEOUT or 60).
    """

    backend = "shm"

    def __init__(self, token: str, rank: int, world_size: int, timeout: float | None = None):
        if not isinstance(world_size, int) or world_size < 1 or world_size > MAX_RANKS:
            raise ValueError(f"shm communicator: world_size must be an int in [1, {MAX_RANKS}],"
                             f" got {world_size!r}")
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ValueError(f"shm communicator: rank must be an int in [0, {world_size}), "
                             f"got {rank!r}")
        self.world_size, self.rank, self.local_rank = world_size, rank, rank
        self.token = token
        self._seq = 0
        self._bar = 0
        self._shm: _Segment | None = None
        super().__init__(timeout)
        try:
            self._attach()
            self._join()
        except BaseException:
            self._release()
            super().close()
            raise
        _LIVE.add(self)

    # ---- rendezvous ----
    def _attach(self) -> None:
        path = segment_path(self.token)
        if self.rank == 0:
            slot = default_slot_bytes(self.world_size)
            try:
                seg = _Segment(path, HEADER + self.world_size * slot)
            except FileExistsError:
                raise DistError(f"shm communicator: a group {path!r} already exists; make a "
                                "new NcclIdHolder() for every launch") from None
            except OSError as e:
                raise DistError(f"shm communicator: cannot create {path!r} "
                                f"({self.world_size} x {slot} bytes): {e}") from None
            self._map(seg, self.world_size, slot)
            self._g[_G_WORLD], self._g[_G_SLOT] = self.world_size, slot
            self._g[_G_MAGIC] = MAGIC  # last: the others wait for it
            return
        deadline = time.monotonic() + self.timeout
        backoff = Backoff()
        while True:
            try:
                seg = _Segment(path)
                if seg.size >= HEADER:
                    g = np.ndarray((8,), np.int64, buffer=seg.buf)
                    ok, world, slot = g[_G_MAGIC] == MAGIC, int(g[_G_WORLD]), int(g[_G_SLOT])
                    del g
                    if ok:
                        break
                seg.close()
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise DistError(f"shm communicator: rank {self.rank} found no group at "
                                f"{path!r} after {self.timeout:g} s: rank 0 did not start, "
                                "died, or was given another NcclIdHolder")
            backoff.pause()
        self._map(seg, world, slot)
        if world != self.world_size:
            self._fail(f"rank {self.rank} was started with world_size {self.world_size} but "
                       f"rank 0 created the group with world_size {world}")

    def _map(self, seg: _Segment, world: int, slot: int) -> None:
        self._shm = seg
        self._slot_bytes = slot
        self._g = np.ndarray((8,), np.int64, buffer=seg.buf)
        self._msg = np.ndarray((_MSG_LEN,), np.uint8, buffer=seg.buf, offset=_MSG_OFF)
        self._recs = np.ndarray((MAX_RANKS, _REC_FIELDS), np.int64, buffer=seg.buf,
                                offset=_REC_OFF)
        self._slots = np.ndarray((world, slot), np.uint8, buffer=seg.buf, offset=HEADER)

    def _join(self) -> None:
        me = self._recs[self.rank]
        if me[_STATE] == _JOINED and _alive(int(me[_PID])):
            self._fail(f"rank {self.rank} was started twice (pid {int(me[_PID])} and "
                       f"{os.getpid()})")
        me[_PID], me[_WSIZE], me[_BAR] = os.getpid(), self.world_size, 0
        me[_STATE] = _JOINED
        self._collective(4, 0, "joining the group")  # every rank is attached after this
        # As after every collective: nobody overwrites its record before all have checked it.
        self._arrive("joining the group")
        if self.rank == 0:
            try:
                os.unlink(self._shm.path)  # the mappings stay; nothing is left behind
            except FileNotFoundError:
                pass

    # ---- failure handling ----
    def _poison(self, msg: str) -> None:
        if self._shm is None or self._g[_G_POISON]:
            return
        raw = np.frombuffer(msg.encode()[:_MSG_LEN - 1], np.uint8)
        self._msg[:] = 0
        self._msg[:raw.size] = raw
        self._g[_G_POISON] = self.rank + 1

    def _poison_message(self) -> str:
        who = int(self._g[_G_POISON]) - 1
        text = bytes(self._msg).split(b"\0", 1)[0].decode(errors="replace")
        return f"rank {who} reported: {text}"

    def _fail(self, msg: str) -> None:
        self._poison(msg)
        raise DistError(f"shm communicator: {msg}")

    def _on_failure(self, error):
        self._poison(str(error))

    # ---- barriers and collectives ----
    def _wait_all(self, k: int, what: str) -> None:
        bars = self._recs[:self.world_size, _BAR]
        if (bars >= k).all():
            return
        t0 = time.monotonic()
        next_check = t0 + 0.05
        backoff = Backoff()
        while True:
            if (bars >= k).all():
                return
            if self._g[_G_POISON]:
                raise DistError(f"shm communicator, rank {self.rank}, {what}: "
                                f"{self._poison_message()}")
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.05
                for r in np.flatnonzero(bars < k):
                    rec = self._recs[r]
                    if rec[_STATE] == _CLOSED:
                        self._fail(f"rank {r} closed its communicator (exited) while rank "
                                   f"{self.rank} waits for it in {what}")
                    if rec[_STATE] == _JOINED and not _alive(int(rec[_PID])):
                        self._fail(f"rank {r} (pid {int(rec[_PID])}) died while rank "
                                   f"{self.rank} waits for it in {what}")
                if now - t0 > self.timeout:
                    missing = [int(r) for r in np.flatnonzero(bars < k)]
                    self._fail(f"rank {self.rank} timed out after {self.timeout:g} s in "
                               f"{what} waiting for rank(s) {missing} "
                               "(set MINISINGA_DIST_TIMEOUT to change the limit)")
            backoff.pause()

    def _arrive(self, what: str) -> None:
        self._bar += 1
        self._recs[self.rank, _BAR] = self._bar
        self._wait_all(self._bar, what)

    def _collective(self, kind: int, nbytes: int, what: str | None = None) -> None:
        """Announces collective #seq (kind, bytes), waits for all ranks and checks they agree.
        The caller must pass one more `_arrive` before the next collective."""
        self._seq += 1
        what = what or f"{COLLECTIVE_KINDS[kind]} #{self._seq} ({nbytes} bytes)"
        me = self._recs[self.rank]
        me[_SEQ], me[_KIND], me[_NBYTES] = self._seq, kind, nbytes
        self._arrive(what)
        recs = self._recs[:self.world_size]
        bad = np.flatnonzero((recs[:, _SEQ] != self._seq) | (recs[:, _KIND] != kind)
                             | (recs[:, _NBYTES] != nbytes))
        if bad.size:
            r = int(bad[0])
            self._fail(disagreement(self.rank, (self._seq, kind, nbytes), r,
                                    recs[r, [_SEQ, _KIND, _NBYTES]]))

    def _chunks(self, nbytes: int):
        step = self._slot_bytes
        for lo in range(0, nbytes, step):
            yield lo, min(nbytes, lo + step)
        if nbytes == 0:
            yield 0, 0

    def _allreduce_(self, a):
        raw = a.view(np.uint8)
        s = self._slots
        for lo, hi in self._chunks(raw.nbytes):
            s[self.rank, :hi - lo] = raw[lo:hi]
            self._collective(1, hi - lo)
            out = raw[lo:hi].view(np.float32)
            if self.world_size > 1:
                parts = [s[r, :hi - lo].view(np.float32) for r in range(self.world_size)]
                np.add(parts[0], parts[1], out=out)  # rank order: identical on every rank
                for p in parts[2:]:
                    out += p
            self._arrive(f"all_reduce #{self._seq}")

    def _allgather(self, a):
        raw = a.view(np.uint8)
        out = np.empty((self.world_size, raw.nbytes), np.uint8)
        s = self._slots
        for lo, hi in self._chunks(raw.nbytes):
            s[self.rank, :hi - lo] = raw[lo:hi]
            self._collective(2, hi - lo)
            out[:, lo:hi] = s[:, :hi - lo]
            self._arrive(f"all_gather #{self._seq}")
        return out.view(a.dtype).reshape(self.world_size, a.size)

    def _bcast_(self, a, root):
        raw = a.view(np.uint8)
        s = self._slots
        for lo, hi in self._chunks(raw.nbytes):
            if self.rank == root:
                s[root, :hi - lo] = raw[lo:hi]
            self._collective(3, hi - lo)
            if self.rank != root:
                raw[lo:hi] = s[root, :hi - lo]
            self._arrive(f"broadcast #{self._seq}")

    def _barrier(self):
        self._collective(4, 0)
        self._arrive(f"barrier #{self._seq}")

    # ---- shutdown ----
    def _shutdown(self):
        if self._shm is not None and not self._g[_G_POISON]:
            self._recs[self.rank, _STATE] = _CLOSED
        self._release()

    def _release(self) -> None:
        if self._shm is None:
            return
        shm, self._shm = self._shm, None
        if self.rank == 0:  # the creator removes the name if the join did not get that far
            try:
                os.unlink(shm.path)
            except FileNotFoundError:
                pass
        for attr in ("_g", "_msg", "_recs", "_slots"):
            self.__dict__.pop(attr, None)
        try:
            shm.close()
        except BufferError:  # a view is still alive somewhere; the OS unmaps at exit
            pass


def _close_all() -> None:
    live: list[ShmCommunicator] = list(_LIVE)
    for c in live:
        try:
            c.close()
        except Exception:  # noqa: BLE001, S110 - best effort at interpreter exit
            pass


atexit.register(_close_all)
