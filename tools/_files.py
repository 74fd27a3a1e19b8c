"""`ReadFile`, `ListFiles`, `WriteFile`: file access confined to one directory.

Every path the model sends is resolved (following symlinks) and must stay under the
sandbox root; `..`, absolute paths and symlinks that lead out are refused. The final
open uses `O_NOFOLLOW`, so a symlink swapped in after the check is refused too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, Literal

import anyio.to_thread
from pydantic import BaseModel, Field

from tiered import RunContext, Tool, UserError

__all__ = ("FileContent", "FileEntry", "FileListing", "ListFiles", "ReadFile", "WriteFile")

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _Sandbox:
    """Maps the model's relative paths into `root` and refuses any that lead out."""

    __slots__ = ("root",)

    def __init__(self, root: str | os.PathLike[str]) -> None:
        resolved = Path(root).expanduser().resolve()
        if not resolved.is_dir():
            raise UserError(f"sandbox root {str(root)!r} is not an existing directory")
        self.root = resolved

    def resolve(self, path: str) -> Path:
        """The real path `path` names inside the root; `PermissionError` if it leads out."""
        if "\x00" in path:
            raise PermissionError("the path contains a NUL character")
        if Path(path).is_absolute() or path.startswith(("/", "\\")):
            raise PermissionError(
                f"{path!r} is an absolute path: give a path relative to the sandbox root, "
                "like 'notes/todo.txt'"
            )
        try:
            target = (self.root / path).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise PermissionError(f"{path!r} cannot be resolved: {exc}") from None
        if not target.is_relative_to(self.root):
            raise PermissionError(
                f"{path!r} leads outside the sandbox (through '..' or a symlink): "
                "only paths inside it can be used"
            )
        return target

    def relative(self, target: Path) -> str:
        """`target` as the model should write it: relative to the root, '/'-separated."""
        return target.relative_to(self.root).as_posix() or "."

    def contains(self, target: Path) -> bool:
        """Whether `target`, with symlinks resolved, is inside the root."""
        return target.resolve().is_relative_to(self.root)


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
        self._sandbox = _Sandbox(root)
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
        return await anyio.to_thread.run_sync(self._read, args.path, args.offset)

    def _read(self, path: str, offset: int) -> FileContent:
        target = self._sandbox.resolve(path)
        if target.is_dir():
            raise IsADirectoryError(f"{path!r} is a directory: use list_files to see inside it")
        if not target.exists():
            raise FileNotFoundError(f"{path!r} does not exist: use list_files to see what does")
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{path!r} is not a regular file")
            size = info.st_size
            f.seek(offset)
            chunk = f.read(self.max_bytes)
        if b"\x00" in chunk:
            raise ValueError(f"{path!r} looks like a binary file; only text files can be read")
        end = offset + len(chunk)
        if end < size:
            chunk = chunk[: _complete_utf8(chunk)]
            end = offset + len(chunk)
        return FileContent(
            path=self._sandbox.relative(target),
            text=chunk.decode("utf-8", errors="replace"),
            size=size,
            next_offset=end if end < size else None,
        )


def _children(directory: Path) -> list[Path]:
    """The entries of `directory`, sorted; none if it cannot be read."""
    try:
        return sorted(directory.iterdir())
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
        self._sandbox = _Sandbox(root)
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
        return await anyio.to_thread.run_sync(self._list, args.path, args.recursive)

    def _list(self, path: str, recursive: bool) -> FileListing:
        top = self._sandbox.resolve(path)
        if not top.is_dir():
            raise NotADirectoryError(f"{path!r} is not an existing directory")
        entries: list[FileEntry] = []
        truncated = False
        stack = [iter(_children(top))]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                stack.pop()
                continue
            try:
                if not self._sandbox.contains(child):
                    continue
                is_dir = child.is_dir()
                size = None if is_dir else child.stat().st_size
            except (OSError, RuntimeError):  # broken symlink, symlink loop, vanished
                continue
            if len(entries) == self.max_entries:
                truncated = True
                break
            kind: Literal["file", "dir"] = "dir" if is_dir else "file"
            entries.append(FileEntry(path=self._sandbox.relative(child), kind=kind, size=size))
            if is_dir and recursive and not child.is_symlink():
                stack.append(iter(_children(child)))
        return FileListing(path=self._sandbox.relative(top), entries=entries, truncated=truncated)


class WriteFile(Tool):
    """Write a UTF-8 text file inside the sandbox (paths relative to its root).

    Creates missing folders; replaces the file unless `append` is true.
    """

    def __init__(
        self, root: str | os.PathLike[str], *, writable: bool = False, max_bytes: int = 1_000_000
    ) -> None:
        self._sandbox = _Sandbox(root)
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
        return await anyio.to_thread.run_sync(self._write, args.path, data, args.append)

    def _write(self, path: str, data: bytes, append: bool) -> str:
        target = self._sandbox.resolve(path)
        if target == self._sandbox.root or target.is_dir():
            raise IsADirectoryError(f"{path!r} is a directory: give a file path")
        target.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
        with os.fdopen(os.open(target, flags, 0o644), "wb") as f:
            f.write(data)
        verb = "appended" if append else "wrote"
        return f"{verb} {len(data)} bytes to {self._sandbox.relative(target)}"
