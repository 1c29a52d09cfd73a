"""The journal: one JSON line per finished point, appended, flushed and fsynced as points finish.

``rows.jsonl`` in the sweep's output folder is what makes an interrupted sweep lose nothing: a
rerun reads it, keeps every finished ``point_id`` of the current grid, and runs only the rest.

- A kill can tear the last line (a write cut short). Such a tail, which has no newline, is
  ignored and cut off before the next append; any other unreadable line is an error naming the
  file and the line.
- Lines are never rewritten or removed: rows of points no longer in the spec (it changed) stay in
  the journal but not in the results, and come back if the spec does.
- When a point appears twice (a rerun with ``retry_errors``), the last line wins.
- While a sweep writes the journal it holds an exclusive lock on it (a POSIX record lock, which
  belongs to the process: forked worker processes do not inherit it), so two sweeps cannot
  interleave rows in one folder. Closing any descriptor of the file would drop such a lock,
  so the journal is read through its one descriptor.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any, Iterable

from simulator.errors import SpecError

JOURNAL = "rows.jsonl"


class Journal:
    """An open, locked journal in ``folder`` (created if needed). Use as a context manager."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / JOURNAL
        self._fd: int | None = None

    def __enter__(self) -> "Journal":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            _lock(self._fd, self.path)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None

    def read(self) -> dict[str, dict[str, Any]]:
        """Finished rows by ``point_id`` (last line wins); cuts off a torn last line."""
        data = _read_all(self._fd)
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a torn tail from a kill mid-write
            os.ftruncate(self._fd, complete)
            os.fsync(self._fd)
            data = data[:complete]
        rows: dict[str, dict[str, Any]] = {}
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SpecError(f"unreadable journal line: {exc.msg}; move the file away to "
                                "start the sweep afresh", source=str(self.path),
                                field=f"line {number}") from None
            if not isinstance(row, dict) or not isinstance(row.get("point_id"), str):
                raise SpecError("journal line without a point_id", source=str(self.path),
                                field=f"line {number}")
            rows[row["point_id"]] = row
        return rows

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append ``rows`` as JSON lines, then flush them to disk (one write, one fsync)."""
        text = "".join(json.dumps(row, allow_nan=True) + "\n" for row in rows)
        if not text:
            return
        data = text.encode("utf-8")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        raise SpecError("another sweep is writing to this folder; wait for it or choose "
                        "another --out", source=str(path)) from None
