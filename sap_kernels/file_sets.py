"""Files that belong together (a result's weights and its JSON; a report's data, figures and page)
written as a set: every file goes to a temporary name beside its target first, then all are renamed
onto their targets in the order they were added. A failure while writing leaves every old file as
it was; a failure while renaming puts back the old files already replaced (kept as hard links, or
copies where the file system has none) and removes the new ones that had no old file, so the
targets hold either the old set or the new one, never a mix. No temporary file is left behind (only a
process killed in the middle of a commit can leave its ``.tmp-*``/``.old-*`` names).

Errors are ``OSError``s naming the target path (with the errno of the cause where there is one).
Written files get the user's umask (``0o666 & ~umask``), not ``mkstemp``'s 0600.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import tempfile
from types import TracebackType
from typing import Callable, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]
Writer = Callable[[str], None]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_io_error(exc: BaseException) -> bool:
    """An I/O failure reported by a writer: an OSError, or a serialiser's own error type
    (safetensors reports a full disk as ``SafetensorError``)."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] == "safetensors"


def named_error(target: str, exc: BaseException) -> OSError:
    """``exc`` as an ``OSError`` naming ``target``; the errno is kept (or read from a serialiser's
    message, ``... (os error 28) at path ...``)."""
    errno = getattr(exc, "errno", None)
    if errno is None:
        found = re.search(r"\(os error (\d+)\)|code: (\d+)", str(exc))
        errno = int(found.group(1) or found.group(2)) if found else None
    reason = getattr(exc, "strerror", None) or (os.strerror(errno) if errno else str(exc)) or type(exc).__name__
    if errno is None:
        return OSError(f"cannot write {target!r}: {reason}")
    return OSError(errno, f"cannot write {target!r}: {reason}")


def _remove(path: Optional[str]) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def _keep_old(target: str) -> Optional[str]:
    """A second name for the file at ``target`` (a hard link, else a copy), or None when there is none."""
    if not os.path.lexists(target):
        return None
    folder, base = os.path.split(os.path.abspath(target))
    keep = os.path.join(folder, f".old-{secrets.token_hex(6)}-{base}")
    try:
        os.link(target, keep)
    except OSError:
        fd, keep = tempfile.mkstemp(prefix=".old-", suffix=base, dir=folder)
        os.close(fd)
        try:
            shutil.copy2(target, keep)
        except BaseException:
            _remove(keep)
            raise
    return keep


class FileSet:
    """Files written as a set: ``write(path, writer)`` now (to a temporary name), ``commit()`` renames
    them all. As a context manager it commits when the block ends and discards on an exception::

        with FileSet() as files:
            files.write("model.safetensors", lambda tmp: save_file(tensors, tmp))
            files.write("model.safetensors.json", lambda tmp: write_text(tmp, text))
    """

    def __init__(self) -> None:
        self._staged: list[tuple[str, str]] = []  # (temporary, target), in rename order

    def write(self, path: PathLike, writer: Writer) -> str:
        """``writer(tmp)`` into a temporary file beside ``path``; returns ``path``. An error (an
        ``OSError`` naming ``path``) leaves nothing behind; other exceptions pass unchanged."""
        target = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(target))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(target), dir=folder)
            os.close(fd)
        except OSError as exc:
            raise named_error(target, exc) from None
        try:
            writer(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
        except BaseException as exc:
            _remove(tmp)
            if _is_io_error(exc):
                raise named_error(target, exc) from None
            raise
        for i, (old_tmp, old_target) in enumerate(self._staged):
            if old_target == target:  # written twice: the last one counts
                _remove(old_tmp)
                del self._staged[i]
                break
        self._staged.append((tmp, target))
        return target

    def discard(self) -> None:
        """Remove every temporary file; the targets stay as they were."""
        for tmp, _ in self._staged:
            _remove(tmp)
        self._staged = []

    def commit(self) -> None:
        """Rename every file onto its target, in the order written; on a failure the old set is
        put back and an ``OSError`` naming the target that failed is raised."""
        staged, self._staged = self._staged, []
        kept: list[Optional[str]] = []
        replaced: list[int] = []
        current = staged[0][1] if staged else ""
        try:
            for _, target in staged:
                current = target
                kept.append(_keep_old(target))
            for i, (tmp, target) in enumerate(staged):
                current = target
                os.replace(tmp, target)
                replaced.append(i)
        except BaseException as exc:
            self._roll_back(staged, kept, replaced)
            if isinstance(exc, Exception):
                raise named_error(current, exc) from None
            raise
        for keep in kept:
            _remove(keep)

    @staticmethod
    def _roll_back(staged: list[tuple[str, str]], kept: list[Optional[str]], replaced: list[int]) -> None:
        for i in reversed(replaced):
            target = staged[i][1]
            keep = kept[i]
            try:
                if keep is None:
                    os.unlink(target)
                else:
                    os.replace(keep, target)
                    kept[i] = None
            except OSError:
                pass
        for (tmp, _), keep in zip(staged, kept + [None] * (len(staged) - len(kept))):
            _remove(tmp)
            _remove(keep)

    def __enter__(self) -> FileSet:
        return self

    def __exit__(self, kind: Optional[type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def write_file(path: PathLike, writer: Writer, files: Optional[FileSet] = None) -> str:
    """``writer`` into ``path`` as part of ``files``, or on its own (a set of one) without it."""
    if files is not None:
        return files.write(path, writer)
    with FileSet() as alone:
        return alone.write(path, writer)


def write_text(path: str, text: str) -> None:
    """``text`` into ``path`` (a ``FileSet`` writer)."""
    with open(path, "w") as f:
        f.write(text)
