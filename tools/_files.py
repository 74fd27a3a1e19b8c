"""`ReadFile`, `ListFiles`, `WriteFile`: file access confined to one directory.

Every path is opened beneath the sandbox root by `_sandbox.Sandbox`, which checks it
while opening (no check-then-use race): `..`, absolute paths and symlinks that lead out
are refused, symlinks that stay inside work. Only regular files are read or written
(a FIFO or a device is refused, opened without blocking), and the work runs in a thread
the run abandons on cancel or timeout, so a hung mount cannot hold the run.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from pydantic import BaseModel, Field

from tiered import RunContext, Tool

from ._sandbox import PATH_ONLY, Sandbox

__all__ = ("FileContent", "FileEntry", "FileListing", "ListFiles", "ReadFile", "WriteFile")

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Run blocking file work in a thread the run abandons when cancelled."""
    return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=True)


def _complete_utf8(chunk: bytes) -> int:
    """Length of `chunk` without a UTF-8 sequence cut off at its end."""
    end = len(chunk)
    i = end - 1
    while i >= 0 and end - i < 4 and chunk[i] & 0xC0 == 0x80:
        i -= 1
    if i < 0:
        return end
    lead = chunk[i]
    need = 1 if lead < 0x80 else 2 if lead >> 5 == 0b110 else 3 if lead >> 4 == 0b1110 else 4
    return i if i + need > end else end


class FileContent(BaseModel):
    """Part or all of a text file."""

    path: str
    text: str
    size: int
    """The file's size in bytes."""
    next_offset: int | None
    """Where to continue reading when the file did not fit in one read; None at the end."""


class ReadFile(Tool):
    """Read a UTF-8 text file inside the sandbox (paths relative to its root).

    Large files come back in parts: call again with `offset` set to `next_offset`.
    """

    def __init__(self, root: str | os.PathLike[str], *, max_bytes: int = 64_000) -> None:
        self._sandbox = Sandbox(root)
        self.max_bytes = max_bytes

    @property
    def root(self) -> Path:
        """The sandbox root, resolved."""
        return self._sandbox.root

    class Args(BaseModel):
        path: str = Field(description="File path relative to the sandbox root")
        offset: int = Field(0, ge=0, description="Byte offset to start at (from next_offset)")

    async def run(self, args: Args, ctx: RunContext[Any]) -> FileContent:
        """Read up to `max_bytes` of the file from `args.offset`."""
        result: FileContent = await _in_thread(self._read, args.path, args.offset)
        return result

    def _read(self, path: str, offset: int) -> FileContent:
        fd, relative = self._sandbox.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            size = _regular_size(fd, path, "read")
            chunk = os.pread(fd, self.max_bytes, offset)
        finally:
            os.close(fd)
        if b"\x00" in chunk:
            raise ValueError(f"{path!r} looks like a binary file; only text files can be read")
        end = offset + len(chunk)
        if end < size:
            chunk = chunk[: _complete_utf8(chunk)]
            end = offset + len(chunk)
        return FileContent(
            path=relative,
            text=chunk.decode("utf-8", errors="replace"),
            size=size,
            next_offset=end if end < size else None,
        )


def _regular_size(fd: int, path: str, verb: str) -> int:
    """The size of the open file `fd`; refuses directories, FIFOs, devices and sockets."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        hint = "use list_files to see inside it" if verb == "read" else "give a file path"
        raise IsADirectoryError(f"{path!r} is a directory: {hint}")
    if not stat.S_ISREG(info.st_mode):
        raise PermissionError(f"{path!r} is not a regular file; only files can be {verb}")
    return info.st_size


def _children(dir_fd: int) -> list[os.DirEntry[str]]:
    """The entries of the open directory `dir_fd`, sorted by name; none if unreadable."""
    try:
        with os.scandir(dir_fd) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


class FileEntry(BaseModel):
    """One entry of a listing."""

    path: str
    """Relative to the sandbox root."""
    kind: Literal["file", "dir"]
    size: int | None
    """Bytes, for files."""


class FileListing(BaseModel):
    """What a directory holds."""

    path: str
    entries: list[FileEntry]
    truncated: bool
    """True when there were more than `max_entries` entries."""


class ListFiles(Tool):
    """List the files and folders in a directory of the sandbox (paths relative to its root)."""

    def __init__(self, root: str | os.PathLike[str], *, max_entries: int = 500) -> None:
        self._sandbox = Sandbox(root)
        self.max_entries = max_entries

    @property
    def root(self) -> Path:
        """The sandbox root, resolved."""
        return self._sandbox.root

    class Args(BaseModel):
        path: str = Field(".", description="Directory relative to the sandbox root; '.' is it")
        recursive: bool = Field(False, description="Also list everything below, depth first")

    async def run(self, args: Args, ctx: RunContext[Any]) -> FileListing:
        """List `args.path`, skipping symlinks that lead out of the sandbox."""
        result: FileListing = await _in_thread(self._list, args.path, args.recursive)
        return result

    def _list(self, path: str, recursive: bool) -> FileListing:
        try:
            top_fd, top = self._sandbox.open(path, os.O_RDONLY | _DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            raise NotADirectoryError(f"{path!r} is not an existing directory") from None
        entries: list[FileEntry] = []
        truncated = False
        prefix = "" if top == "." else top + "/"
        stack = [(top_fd, prefix, iter(_children(top_fd)))]
        try:
            while stack:
                dir_fd, where, children = stack[-1]
                child = next(children, None)
                if child is None:
                    os.close(dir_fd)
                    stack.pop()
                    continue
                found = self._entry(child, where)
                if found is None:
                    continue
                if len(entries) == self.max_entries:
                    truncated = True
                    break
                entries.append(found)
                if found.kind == "dir" and recursive and not child.is_symlink():
                    try:
                        sub = os.open(
                            child.name,
                            os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC,
                            dir_fd=dir_fd,
                        )
                    except OSError:  # replaced meanwhile, perhaps by a symlink: skip it
                        continue
                    stack.append((sub, found.path + "/", iter(_children(sub))))
        finally:
            for dir_fd, _, _ in stack:
                os.close(dir_fd)
        return FileListing(path=top, entries=entries, truncated=truncated)

    def _entry(self, child: os.DirEntry[str], where: str) -> FileEntry | None:
        """The listing entry for `child`, or None for what the tools cannot use."""
        path = where + child.name
        try:
            if child.is_symlink():  # listed only when it leads to somewhere inside
                fd, _ = self._sandbox.open(path, PATH_ONLY)
                try:
                    info = os.fstat(fd)
                finally:
                    os.close(fd)
            else:
                info = child.stat(follow_symlinks=False)
        except OSError:  # leads out, broken, a loop, or vanished
            return None
        if stat.S_ISDIR(info.st_mode):
            return FileEntry(path=path, kind="dir", size=None)
        if stat.S_ISREG(info.st_mode):
            return FileEntry(path=path, kind="file", size=info.st_size)
        return None  # FIFOs, sockets, devices: refused by the file tools anyway


class WriteFile(Tool):
    """Write a UTF-8 text file inside the sandbox (paths relative to its root).

    Creates missing folders; replaces the file unless `append` is true.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, writable: bool = False, max_bytes: int = 1_000_000
    ) -> None:
        self._sandbox = Sandbox(root)
        self.writable = writable
        """Off by default: writes are refused unless the tool was built with `writable=True`."""
        self.max_bytes = max_bytes

    @property
    def root(self) -> Path:
        """The sandbox root, resolved."""
        return self._sandbox.root

    class Args(BaseModel):
        path: str = Field(description="File path relative to the sandbox root")
        content: str = Field(description="The text to write")
        append: bool = Field(False, description="Add to the end instead of replacing the file")

    async def run(self, args: Args, ctx: RunContext[Any]) -> str:
        """Write `args.content`; refused unless the tool is writable."""
        if not self.writable:
            raise PermissionError(
                "this sandbox is read-only (the tool was not built with writable=True); "
                "do not try to write files"
            )
        data = args.content.encode("utf-8")
        if len(data) > self.max_bytes:
            raise ValueError(f"the content is {len(data)} bytes; at most {self.max_bytes} allowed")
        said: str = await _in_thread(self._write, args.path, data, args.append)
        return said

    def _write(self, path: str, data: bytes, append: bool) -> str:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NONBLOCK | (os.O_APPEND if append else 0)
        try:
            fd, relative = self._sandbox.open(path, flags, 0o644, make_dirs=True)
        except IsADirectoryError:
            raise IsADirectoryError(f"{path!r} is a directory: give a file path") from None
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # a FIFO nobody reads
                raise PermissionError(f"{path!r} is not a regular file") from None
            raise
        try:
            _regular_size(fd, path, "written")
            if not append:
                os.ftruncate(fd, 0)  # after the check: never truncate what is not a plain file
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        verb = "appended" if append else "wrote"
        return f"{verb} {len(data)} bytes to {relative}"
