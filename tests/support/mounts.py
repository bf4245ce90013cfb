"""A small file system the test owns: a 1 MB tmpfs (or, where tmpfs cannot be mounted, a loop-mounted ext4
image), to make a folder really full or really read-only. Root ignores file modes, so `chmod 0400` proves
nothing as root; a read-only mount (EROFS) stops root too.

    with SmallFs(tmp_path / "fs") as fs:
        fs.fill()              # every block taken: the next write gets ENOSPC
        fs.free()
        fs.read_only(True)     # mount -o remount,ro (fails with EBUSY while a file is open for writing)

Needs root (CAP_SYS_ADMIN); ServerUnavailable otherwise, which the integration fixtures turn into a skip on
a laptop and a failure when CI=true.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from types import TracebackType

from tests.support.dovecot import ServerUnavailable

FILLER = ".filler"


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)


class SmallFs:
    def __init__(self, path: Path, size_kb: int = 1024) -> None:
        self.path = path
        self.size_kb = size_kb
        self.kind = ""
        self._image: Path | None = None

    def __enter__(self) -> SmallFs:
        self.path.mkdir(parents=True, exist_ok=True)
        tmpfs = _run("mount", "-t", "tmpfs", "-o", f"size={self.size_kb}k,mode=0700", "tmpfs", str(self.path))
        if tmpfs.returncode == 0:
            self.kind = "tmpfs"
            return self
        self._image = self.path.with_name(self.path.name + ".img")
        made = _run("mkfs.ext4", "-q", "-F", str(self._image), f"{max(self.size_kb, 2048)}k")
        loop = _run("mount", "-o", "loop", str(self._image), str(self.path)) if made.returncode == 0 else made
        if loop.returncode != 0:
            self._image.unlink(missing_ok=True)
            raise ServerUnavailable(
                "cannot mount a small file system for the disk-fault tests (needs root): "
                f"tmpfs: {tmpfs.stderr.strip()}; loop: {loop.stderr.strip()}"
            )
        self.kind = "ext4 (loop)"
        self.path.chmod(0o700)
        return self

    def fill(self) -> None:
        """Take every free block: the next write in this file system fails with ENOSPC."""
        fd = os.open(self.path / FILLER, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (65536, 512, 1):
                with contextlib.suppress(OSError):
                    while os.write(fd, b"\0" * size):
                        pass
        finally:
            os.close(fd)
        os.sync()

    def free(self) -> None:
        (self.path / FILLER).unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        done = _run("mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.path))
        if done.returncode != 0:
            raise RuntimeError(f"remount {'ro' if on else 'rw'} {self.path}: {done.stderr.strip()}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if _run("umount", str(self.path)).returncode != 0:
            _run("umount", "-l", str(self.path))
        if self._image is not None:
            self._image.unlink(missing_ok=True)
