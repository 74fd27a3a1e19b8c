"""The wheel carries the whole package, the ready-made agents and tools included.

`src/tiered/agents` and `src/tiered/tools` are relative symlinks to the top-level
folders; hatchling must follow them into the wheel, and an editable install must
follow them at import.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import tiered

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "tiered"


def _source_files() -> set[str]:
    """Wheel paths every .py file of the package and ready-made folders should have."""
    files = {f"tiered/{p.relative_to(PACKAGE).as_posix()}" for p in _py_files(PACKAGE)}
    for folder in ("agents", "tools"):
        base = ROOT / folder
        files |= {f"tiered/{folder}/{p.relative_to(base).as_posix()}" for p in _py_files(base)}
    return files


def _py_files(root: Path) -> list[Path]:
    out = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).parts
        if "__pycache__" in rel or (root == PACKAGE and rel[0] in ("agents", "tools")):
            continue
        out.append(path)
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("tiered-*.whl")
    return built


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    return target


@pytest.mark.slow
def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert "tiered/py.typed" in names
    assert {"tiered/agents/__init__.py", "tiered/tools/__init__.py"} <= names
    missing = _source_files() - names
    assert not missing, f"the wheel lacks {sorted(missing)}"
    top_level = {n.split("/")[0] for n in names}
    assert top_level == {"tiered", f"tiered-{tiered.__version__}.dist-info"}, top_level
    assert not any("__pycache__" in n for n in names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as zf:
        assert "tiered = tiered._cli:main" in zf.read(entry_points).decode()


_IMPORT_FROM_WHEEL = """
import sys
sys.path.insert(0, sys.argv[1])
import tiered, tiered.agents, tiered.tools, tiered.models, tiered._cli
for module in (tiered, tiered.agents, tiered.tools, tiered.models, tiered._cli):
    print(module.__file__)
sys.exit(tiered._cli.main(["cost", "gpt-5.4-nano", "--input", "200", "--output", "30"]))
"""


@pytest.mark.slow
def test_wheel_imports_on_its_own(unpacked: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-c", _IMPORT_FROM_WHEEL, str(unpacked)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    *files, figure, _breakdown = proc.stdout.splitlines()
    assert len(files) == 5
    for file in files:
        assert Path(file).resolve().is_relative_to(unpacked.resolve()), file
    assert figure == "$0.0000775"


def test_editable_install_follows_the_symlinks() -> None:
    import tiered.agents
    import tiered.tools

    assert (PACKAGE / "agents").is_symlink()
    assert (PACKAGE / "tools").is_symlink()
    assert Path(tiered.agents.__file__ or "").resolve() == ROOT / "agents" / "__init__.py"
    assert Path(tiered.tools.__file__ or "").resolve() == ROOT / "tools" / "__init__.py"
