"""What the system promises about its data directory: private, and one owner per role.

Everything under the data directory (broker logs and segments, the ClickHouse
store, credentials, spools, logs) can reveal where officers were, so every file
and folder the system creates is private to its user: `private_umask()` runs
first thing in the `hotspot` entry point, and every child (the worker, the
gateway, the broker's JVM) inherits it.

Long-running roles take an exclusive lock (`flock`) on a lock file holding
their pid: a second `hotspot run` on the same data directory, or a second
worker on the same embedded store, is refused with the pid of the one
running, instead of writing into its logs or waiting for its store forever.
The kernel drops a lock when its process dies, even by kill -9, so a lock file
left behind never blocks a restart.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """New files 0600 and folders 0700, for this process and its children."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` as 0700, or make it so if it exists and is ours (earlier versions left `var/` 0755)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid == os.getuid() and st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


class Locked(Exception):
    """The lock is held by another running process (`pid`, None if it could not be read)."""

    def __init__(self, path: Path, pid: int | None):
        self.path, self.pid = path, pid
        super().__init__(f"{path} is held by pid {pid if pid is not None else '?'}")


class RoleLock:
    """An exclusive, non-blocking flock on `path`, recording our pid; held until `release()` or exit."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> "RoleLock":
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise Locked(self.path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        # Not inherited by children: the lock is this process's, and dies with it.
        os.set_inheritable(fd, False)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a reader sees the old file or the new one), readable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip())
    except ValueError:
        return None
