"""Writing result files atomically: a temporary file in the target's folder, flushed to disk,
then renamed over the target, so a reader (or a crash) never sees half a file."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable


def replace_atomic(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` to fill a temporary file, then move it over ``path``.

    The file gets the permissions the umask gives ordinary files; on any error the temporary
    file is removed and ``path`` is left as it was. A target that is a folder or anything but a
    regular file (a device such as ``/dev/full``) is refused, and an OS error (disk full,
    read-only, no permission) becomes one :class:`~simulator.errors.SpecError` naming the path.
    """
    from simulator.errors import SpecError
    target = Path(path)
    if target.is_dir():
        raise SpecError("cannot write a file here: it is a folder", source=str(target))
    if target.exists() and not target.is_file():  # a device, a FIFO: never replaced
        raise SpecError("cannot write a file here: it is not a regular file",
                        source=str(target))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # mode as umask
    except OSError as exc:
        raise SpecError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise SpecError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None
        raise


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    replace_atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    replace_atomic(path, lambda tmp: Path(tmp).write_bytes(data))
