"""What the file, HTTP and SQL tools refuse, attacked the way a hostile model or server would:
symlink races on intermediate directories, FIFOs, other ports, cross-origin redirects
carrying credentials, and result sets far larger than the reply."""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import tiered.tools._sandbox as sandbox_module
from tiered import Ledger, RunContext
from tiered.tools import HttpFetch, ListFiles, ReadFile, SqlQuery, WriteFile

pytestmark = pytest.mark.anyio


@pytest.fixture
def ctx() -> RunContext[Any]:
    return RunContext(deps=None, agent="t", ledger=Ledger())


# --- files -------------------------------------------------------------------------------


@pytest.fixture(params=["openat2", "walk"])
def resolver(request: pytest.FixtureRequest) -> str:
    """Both ways of opening beneath the root: the kernel's, and the descriptor walk."""
    if request.param == "openat2":
        probe = sandbox_module.Sandbox(Path.cwd())
        try:
            os.close(probe.open(".", os.O_RDONLY)[0])
        except OSError:  # pragma: no cover - every kernel CI runs on has openat2
            pytest.fail("openat2 is not usable here")
        assert sandbox_module._openat2_works, "this kernel lacks openat2: only the walk is tested"
    return str(request.param)


def _tools(root: Path, resolver: str) -> tuple[ReadFile, WriteFile, ListFiles]:
    tools = (ReadFile(root), WriteFile(root, writable=True), ListFiles(root))
    for t in tools:
        t._sandbox.use_openat2 = resolver == "openat2"
    return tools


@pytest.fixture
def box(tmp_path: Path) -> Path:
    root = tmp_path / "box"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f.txt").write_text("inside")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f.txt").write_text("OUTSIDE")
    return root


def _flip(root: Path, outside: Path, stop: threading.Event, flips: list[int]) -> None:
    """Swap `root/d` between the real directory and a symlink out, as fast as possible.

    A write may create a fresh `d` while the real one is away; it is removed again.
    """
    real, held = root / "d", root / "d.real"
    relative = os.path.relpath(outside, root)
    n = 0
    try:
        while not stop.is_set():
            os.rename(real, held)
            with contextlib.suppress(FileExistsError):
                os.symlink(outside if n % 2 else relative, real)  # absolute and relative targets
            while True:
                # A write may be filling a fresh `d` while it is removed: retry until it is gone.
                with contextlib.suppress(OSError):
                    if real.is_symlink():
                        real.unlink()
                    elif real.exists():
                        shutil.rmtree(real)
                try:
                    os.rename(held, real)
                    break
                except OSError:  # a write made `d` again meanwhile
                    continue
            n += 1
    finally:
        flips.append(n)


def test_a_symlink_race_on_an_intermediate_directory_never_escapes(
    box: Path, resolver: str
) -> None:
    reader, writer, _ = _tools(box, resolver)
    outside = box.parent / "outside"
    stop, flips = threading.Event(), list[int]()
    flipper = threading.Thread(target=_flip, args=(box, outside, stop, flips))
    flipper.start()
    escapes = reads = refused = 0
    try:
        for i in range(20_000):
            try:
                text = reader._read("d/f.txt", 0).text
            except OSError:
                refused += 1
                continue
            reads += 1
            escapes += text != "inside"
            if i % 10 == 0:
                with contextlib.suppress(OSError):
                    writer._write("d/new.txt", b"x", False)
    finally:
        stop.set()
        flipper.join()
    assert escapes == 0
    assert sorted(p.name for p in outside.iterdir()) == ["f.txt"]  # no write landed outside
    assert flips[0] > 100  # the race really ran
    assert reads > 0
    assert refused > 0


@pytest.mark.parametrize("path", ["d/f.txt", "d/../d/f.txt", "./d//f.txt", "d/./f.txt"])
async def test_paths_are_normalized_the_same_by_both_resolvers(
    box: Path, resolver: str, ctx: RunContext[Any], path: str
) -> None:
    reader, _, lister = _tools(box, resolver)
    content = await reader.run(ReadFile.Args(path=path), ctx)
    assert (content.text, content.path) == ("inside", "d/f.txt")
    for top, expected in [(".", ["d", "d/f.txt"]), ("d/..", ["d", "d/f.txt"]), ("d/", ["d/f.txt"])]:
        listing = await lister.run(ListFiles.Args(path=top, recursive=True), ctx)
        assert [e.path for e in listing.entries] == expected


async def test_missing_and_misplaced_paths_name_only_the_relative_path(
    box: Path, resolver: str, ctx: RunContext[Any]
) -> None:
    reader, writer, lister = _tools(box, resolver)
    with pytest.raises(FileNotFoundError, match=r"'nope/f\.txt' does not exist") as missing:
        await reader.run(ReadFile.Args(path="nope/f.txt"), ctx)
    with pytest.raises(NotADirectoryError) as misplaced:
        await reader.run(ReadFile.Args(path="d/f.txt/deeper"), ctx)
    with pytest.raises(IsADirectoryError, match="give a file path"):
        await writer.run(WriteFile.Args(path="d", content="x"), ctx)
    with pytest.raises(NotADirectoryError, match="not an existing directory"):
        await lister.run(ListFiles.Args(path="d/f.txt"), ctx)
    for info in (missing, misplaced):
        assert str(box) not in str(info.value)


@pytest.mark.parametrize(
    ("link", "path", "text"),
    [
        ("d", "alias/f.txt", "inside"),  # a relative symlink to a directory inside
        ("{root}/d/f.txt", "file-link", "inside"),  # an absolute one naming a place inside
        ("d/../d/f.txt", "file-link", "inside"),
    ],
)
async def test_symlinks_that_stay_inside_work(
    box: Path, resolver: str, ctx: RunContext[Any], link: str, path: str, text: str
) -> None:
    reader, _, lister = _tools(box, resolver)
    (box / path.split("/")[0]).symlink_to(link.format(root=box))
    content = await reader.run(ReadFile.Args(path=path), ctx)
    assert (content.text, content.path) == (text, "d/f.txt")
    listing = await lister.run(ListFiles.Args(), ctx)
    assert path.split("/")[0] in [e.path for e in listing.entries]


@pytest.mark.parametrize(
    ("link", "why"),
    [
        ("../outside", "leads outside"),
        ("{outside}", "leads outside"),
        ("d/../../outside", "leads outside"),
        ("loop", "too many symbolic links"),
    ],
)
async def test_symlinks_that_lead_out_are_refused(
    box: Path, resolver: str, ctx: RunContext[Any], link: str, why: str
) -> None:
    reader, writer, lister = _tools(box, resolver)
    (box / "loop").symlink_to(link.format(outside=box.parent / "outside"))
    with pytest.raises(PermissionError, match=why):
        await reader.run(ReadFile.Args(path="loop/f.txt"), ctx)
    with pytest.raises(PermissionError, match=why):
        await writer.run(WriteFile.Args(path="loop/new.txt", content="x"), ctx)
    listing = await lister.run(ListFiles.Args(), ctx)
    assert "loop" not in [e.path for e in listing.entries]
    assert sorted(p.name for p in (box.parent / "outside").iterdir()) == ["f.txt"]


async def test_writes_create_folders_beneath_the_root(
    box: Path, resolver: str, ctx: RunContext[Any]
) -> None:
    _, writer, _ = _tools(box, resolver)
    said = await writer.run(WriteFile.Args(path="a/b/c.txt", content="deep"), ctx)
    assert said == "wrote 4 bytes to a/b/c.txt"
    assert (box / "a" / "b" / "c.txt").read_text() == "deep"
    (box / "alias").symlink_to("a")
    await writer.run(WriteFile.Args(path="alias/b/c.txt", content="more", append=True), ctx)
    assert (box / "a" / "b" / "c.txt").read_text() == "deepmore"


async def test_fifos_and_other_special_files_are_refused_without_blocking(
    box: Path, resolver: str, ctx: RunContext[Any]
) -> None:
    reader, writer, lister = _tools(box, resolver)
    os.mkfifo(box / "pipe")
    with pytest.raises(PermissionError, match="not a regular file"):
        await reader.run(ReadFile.Args(path="pipe"), ctx)
    with pytest.raises(PermissionError, match="not a regular file"):  # nobody reads it
        await writer.run(WriteFile.Args(path="pipe", content="x"), ctx)
    held = os.open(box / "pipe", os.O_RDONLY | os.O_NONBLOCK)  # now somebody does
    try:
        with pytest.raises(PermissionError, match="not a regular file"):
            await writer.run(WriteFile.Args(path="pipe", content="x"), ctx)
        assert os.read(held, 10) == b""  # nothing was written into it
    finally:
        os.close(held)
    listing = await lister.run(ListFiles.Args(), ctx)
    assert "pipe" not in [e.path for e in listing.entries]


# --- HTTP --------------------------------------------------------------------------------


class _Server:
    """A loopback HTTP server recording each request's path and headers."""

    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str]]]) -> None:
        seen: list[tuple[str, dict[str, str]]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, dict(self.headers)))
                status, headers = routes.get(self.path, (200, {}))
                body = b"" if status != 200 else f"page {self.path}".encode()
                self.send_response(status)
                for k, v in {"content-type": "text/plain", **headers}.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def servers() -> Iterator[tuple[_Server, _Server, dict[str, tuple[int, dict[str, str]]]]]:
    routes: dict[str, tuple[int, dict[str, str]]] = {}
    a, b = _Server("127.0.0.1", routes), _Server("127.0.0.2", routes)
    yield a, b, routes
    a.close()
    b.close()


async def test_http_fetch_allows_only_listed_ports(
    servers: tuple[_Server, _Server, Any], ctx: RunContext[Any]
) -> None:
    a, _b, routes = servers
    fetch = HttpFetch([a.netloc])
    ok = await fetch.run(HttpFetch.Args(url=f"http://{a.netloc}/x"), ctx)
    assert (ok.status, ok.text) == (200, "page /x")
    with pytest.raises(PermissionError, match=r"port 22 of '127\.0\.0\.1' is not allowed"):
        await fetch.run(HttpFetch.Args(url="http://127.0.0.1:22/"), ctx)
    with pytest.raises(PermissionError, match="port 80 of"):  # a bare host allows 80 and 443
        await fetch.run(HttpFetch.Args(url="http://127.0.0.1/"), ctx)
    routes["/jump"] = (302, {"location": "http://127.0.0.1:6379/"})
    with pytest.raises(PermissionError, match="port 6379 of"):  # every hop is checked
        await fetch.run(HttpFetch.Args(url=f"http://{a.netloc}/jump"), ctx)
    assert [p for p, _ in a.seen] == ["/x", "/jump"]
    bare = HttpFetch(["api.example.com", "[::1]:8080"])
    assert bare.allows("api.example.com", 443)
    assert bare.allows("api.example.com", 80)
    assert not bare.allows("api.example.com", 8443)
    assert bare.allows("::1", 8080)
    assert not bare.allows("::1", 443)
    assert bare.definition().description.endswith("Allowed hosts: [::1]:8080, api.example.com.")


async def test_a_redirect_to_another_host_drops_credentials(
    servers: tuple[_Server, _Server, Any], ctx: RunContext[Any]
) -> None:
    a, b, routes = servers
    secret = {"Authorization": "Bearer s3cret", "Cookie": "session=abc"}
    fetch = HttpFetch([a.netloc, b.netloc], headers=secret)
    routes["/same"] = (302, {"location": "/there"})
    routes["/other"] = (302, {"location": f"http://{b.netloc}/landed"})
    same = await fetch.run(HttpFetch.Args(url=f"http://{a.netloc}/same"), ctx)
    assert same.url == f"http://{a.netloc}/there"
    other = await fetch.run(HttpFetch.Args(url=f"http://{a.netloc}/other"), ctx)
    assert (other.url, other.text) == (f"http://{b.netloc}/landed", "page /landed")
    sent = {path: {k.lower(): v for k, v in h.items()} for path, h in a.seen + b.seen}
    for path in ("/same", "/there", "/other"):  # the origin the credentials are for
        assert sent[path]["authorization"] == "Bearer s3cret"
        assert sent[path]["cookie"] == "session=abc"
    assert "authorization" not in sent["/landed"]
    assert "cookie" not in sent["/landed"]


# --- SQL ---------------------------------------------------------------------------------

_BIG_ROWS = (
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 201) "
    "SELECT i, hex(zeroblob(500000)) AS cell, zeroblob(1000000) AS blob FROM r"
)
"""201 rows, each with a 1 MB text cell and a 1 MB blob."""


async def test_sql_results_are_bounded_before_python_sees_them(
    tmp_path: Path, ctx: RunContext[Any]
) -> None:
    db = tmp_path / "t.db"
    sqlite3.connect(db).close()
    query = SqlQuery(db, max_rows=200, max_cell_chars=10, max_result_chars=5_000)
    tracemalloc.start()
    try:
        result = await query.run(SqlQuery.Args(sql=_BIG_ROWS), ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # not the 400 MB the rows hold
    assert result.columns == ["i", "cell", "blob"]
    assert result.rows[0] == [1, "0" * 10 + "…", "<blob of 1000000 bytes>"]
    assert result.truncated
    assert sum(len(str(c)) for row in result.rows for c in row) <= 5_000
    ordered = _BIG_ROWS.replace(", hex(zeroblob(500000)) AS cell, zeroblob(1000000) AS blob", "")
    few = await SqlQuery(db, max_rows=3).run(SqlQuery.Args(sql=ordered + " ORDER BY i DESC"), ctx)
    assert ([r[0] for r in few.rows], few.truncated) == ([201, 200, 199], True)


async def test_sql_bounds_hold_on_a_shared_connection(ctx: RunContext[Any]) -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    conn.execute("CREATE TABLE t (a, b)")
    conn.execute("INSERT INTO t VALUES (1, 'hello world'), (2, x'0102')")
    query = SqlQuery(conn, max_cell_chars=5)
    for sql in ("SELECT a, b FROM t;", "SELECT a, a, b FROM t -- trailing comment"):
        result = await query.run(SqlQuery.Args(sql=sql), ctx)
        assert [row[-1] for row in result.rows] == ["hello…", "<blob of 2 bytes>"]
    tracemalloc.start()
    try:
        await query.run(SqlQuery.Args(sql=_BIG_ROWS), ctx)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000
    assert conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) == 1_000_000_000  # restored afterwards
