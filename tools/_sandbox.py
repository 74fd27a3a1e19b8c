"""Opening paths beneath a root without races: `openat2(RESOLVE_BENEATH)`, else a walk.

A path is checked while it is opened, never before: the kernel's `openat2` with
`RESOLVE_BENEATH` where it exists, else a walk that opens one component at a time
relative to the directory descriptor already held, with `O_NOFOLLOW`. The walk reads
each symlink it meets and follows it itself: `..` pops its own stack of descriptors,
an absolute target must name a place under the root. Swapping a directory for a
symlink between checks gains nothing, because nothing is looked up by name twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import posixpath
import stat
from collections import deque
from pathlib import Path

from tiered import UserError

__all__ = ("Sandbox",)

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _CLOEXEC
_NOCTTY = getattr(os, "O_NOCTTY", 0)  # a terminal device inside the root never becomes ours
PATH_ONLY = getattr(os, "O_PATH", os.O_RDONLY | os.O_NONBLOCK)
"""Flags that open without reading (for `fstat`): `O_PATH` on Linux."""
_MAX_LINKS = 40  # as the kernel's own limit


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


_SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "arm64": 437}.get(platform.machine())
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08
_syscall = None
if _SYS_OPENAT2 is not None and platform.system() == "Linux":  # pragma: no branch
    try:
        _syscall = ctypes.CDLL(None, use_errno=True).syscall
        _syscall.restype = ctypes.c_long
        _syscall.argtypes = (
            ctypes.c_long,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.POINTER(_OpenHow),
            ctypes.c_size_t,
        )
    except (OSError, AttributeError):
        _syscall = None
_openat2_works: bool | None = None if _syscall is not None else False  # probed on first use


def _raw_openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    assert _syscall is not None
    if not flags & os.O_CREAT:
        mode = 0  # openat2 refuses a mode it would not use
    how = _OpenHow(flags | _CLOEXEC, mode, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
    fd = int(_syscall(_SYS_OPENAT2, dir_fd, os.fsencode(path), ctypes.byref(how), 24))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return fd


def _openat2(dir_fd: int, path: str, flags: int, mode: int) -> int:
    """`openat2(RESOLVE_BENEATH)`; raises OSError, ENOSYS where the kernel lacks it."""
    global _openat2_works
    if _openat2_works is None:
        try:  # an old kernel, or a seccomp filter that denies the call
            os.close(_raw_openat2(dir_fd, ".", PATH_ONLY, 0))
            _openat2_works = True
        except OSError:
            _openat2_works = False
    if _syscall is None or not _openat2_works:
        raise OSError(errno.ENOSYS, "openat2 is not available")
    return _raw_openat2(dir_fd, path, flags, mode)


class Sandbox:
    """Maps the model's relative paths into `root` and opens them without leaving it."""

    __slots__ = ("root", "use_openat2")

    def __init__(self, root: str | os.PathLike[str]) -> None:
        resolved = Path(root).expanduser().resolve()
        if not resolved.is_dir():
            raise UserError(f"sandbox root {str(root)!r} is not an existing directory")
        self.root = resolved
        self.use_openat2 = True
        """False: always walk (tests use it to exercise the fallback)."""

    def _outside(self, path: str) -> PermissionError:
        return PermissionError(
            f"{path!r} leads outside the sandbox (through '..' or a symlink): "
            "only paths inside it can be used"
        )

    def check(self, path: str) -> None:
        """Refuse what no lookup is needed to refuse: NUL, absolute paths, leading `..`."""
        if "\x00" in path:
            raise PermissionError("the path contains a NUL character")
        if path.startswith(("/", "\\")) or Path(path).is_absolute():
            raise PermissionError(
                f"{path!r} is an absolute path: give a path relative to the sandbox root, "
                "like 'notes/todo.txt'"
            )
        normal = posixpath.normpath(path)
        if normal == ".." or normal.startswith("../"):
            raise self._outside(path)

    def open(
        self, path: str, flags: int, mode: int = 0o644, *, make_dirs: bool = False
    ) -> tuple[int, str]:
        """Open `path` beneath the root: the descriptor and the real path relative to the root.

        Raises `PermissionError` for any path that leads out, `FileNotFoundError` for one
        that does not exist, and the `OSError` the open gave otherwise.
        """
        self.check(path)
        if flags != PATH_ONLY:  # openat2 takes nothing else beside O_PATH
            flags |= _NOCTTY
        try:
            root_fd = os.open(self.root, _DIR_FLAGS)
        except OSError as exc:
            raise FileNotFoundError(exc.errno, "the sandbox folder itself is gone") from None
        try:
            if self.use_openat2:
                try:
                    fd = _openat2(root_fd, path or ".", flags, mode)
                except OSError as exc:
                    retry = (errno.ENOSYS, errno.EPERM, errno.EXDEV, errno.ELOOP, errno.EAGAIN)
                    if exc.errno not in retry and not (make_dirs and exc.errno == errno.ENOENT):
                        raise self._reworded(path, exc) from None
                else:
                    return fd, self._relative(fd, path)
            try:
                return self._walk(root_fd, path, flags, mode, make_dirs=make_dirs)
            except OSError as exc:
                if isinstance(exc, PermissionError):
                    raise
                raise self._reworded(path, exc) from None
        finally:
            os.close(root_fd)

    def _reworded(self, path: str, exc: OSError) -> OSError:
        """The error without the root's location (the model never learns where it is)."""
        if exc.errno == errno.ENOENT:
            return FileNotFoundError(
                errno.ENOENT, f"{path!r} does not exist: use list_files to see what does"
            )
        if exc.errno == errno.EXDEV:
            return self._outside(path)
        if exc.errno == errno.ELOOP:
            return PermissionError(f"{path!r} cannot be resolved: too many symbolic links")
        kind = OSError if exc.errno is None else type(exc)
        return kind(exc.errno, f"{path!r}: {exc.strerror or exc}")

    def _relative(self, fd: int, path: str) -> str:
        try:
            real = Path(os.readlink(f"/proc/self/fd/{fd}"))
            return real.relative_to(self.root).as_posix() or "."
        except (OSError, ValueError):
            return posixpath.normpath(path)

    def _walk(
        self, root_fd: int, path: str, flags: int, mode: int, *, make_dirs: bool
    ) -> tuple[int, str]:
        """Open `path` one component at a time from `root_fd`, following symlinks by hand."""
        stack: list[int] = []  # descriptors of the directories below the root, held open
        names: list[str] = []
        pending = deque(path.split("/"))
        links = 0
        root_text = str(self.root)

        def here() -> int:
            return stack[-1] if stack else root_fd

        try:
            while pending:
                name = pending.popleft()
                if name in ("", ".", ".."):
                    if name == "..":
                        if not stack:
                            raise self._outside(path)
                        os.close(stack.pop())
                        names.pop()
                    if pending:
                        continue
                    name = "."
                final = not pending
                target: str | None = None
                try:
                    fd = os.open(
                        name, (flags if final else _DIR_FLAGS) | _NOFOLLOW, mode, dir_fd=here()
                    )
                except FileNotFoundError:
                    if not make_dirs or final:
                        raise
                    with contextlib.suppress(FileExistsError):  # made meanwhile: fine
                        os.mkdir(name, 0o755, dir_fd=here())
                    pending.appendleft(name)
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        raise
                    target = _readlink(name, here())
                    if target is None and not _is_dir_or_link(name, here()):
                        raise  # a file where a directory should be
                else:
                    if not stat.S_ISLNK(os.fstat(fd).st_mode):
                        if final:
                            return fd, "/".join([*names, name] if name != "." else names) or "."
                        stack.append(fd)
                        names.append(name)
                        continue
                    os.close(fd)  # O_PATH with O_NOFOLLOW opens the link itself
                    target = _readlink(name, here())
                links += 1
                if links > _MAX_LINKS:
                    raise PermissionError(f"{path!r} cannot be resolved: too many symbolic links")
                if target is None:  # swapped while we looked: look again
                    pending.appendleft(name)
                    continue
                if target.startswith("/"):
                    if target != root_text and not target.startswith(root_text + "/"):
                        raise self._outside(path)
                    while stack:
                        os.close(stack.pop())
                    names.clear()
                    target = target[len(root_text) :]
                pending.extendleft(reversed(target.split("/")))
            raise self._outside(path)  # not reached: the last component returns
        finally:
            for fd in stack:
                os.close(fd)


def _is_dir_or_link(name: str, dir_fd: int) -> bool:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return False
    return stat.S_ISDIR(mode) or stat.S_ISLNK(mode)


def _readlink(name: str, dir_fd: int) -> str | None:
    """The target of symlink `name` in `dir_fd`, or None if it is not a symlink."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return None
