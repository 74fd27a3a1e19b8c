"""The ready-made tools in `tiered.tools`: called directly and through an agent loop."""

from __future__ import annotations

import ast
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

import tiered.tools
from tiered import Agent, Ledger, ModelRetry, RunContext, ToolResultMessage, UserError
from tiered.models import ScriptedModel, call
from tiered.tools import (
    Calculator,
    HttpFetch,
    ListFiles,
    ReadFile,
    SqlQuery,
    TextSearch,
    WriteFile,
)

pytestmark = pytest.mark.anyio

READY = Path(__file__).resolve().parent.parent


@pytest.fixture
def ctx() -> RunContext[Any]:
    return RunContext(deps=None, agent="t", ledger=Ledger())


def tool_results(model: ScriptedModel) -> list[ToolResultMessage]:
    """Every tool result the model was sent, in order."""
    last = model.requests[-1].messages
    return [m for m in last if isinstance(m, ToolResultMessage)]


# --- the package ----------------------------------------------------------------------


def test_exports_are_pinned() -> None:
    assert tiered.tools.__all__ == (
        "Calculator",
        "FetchResult",
        "FileContent",
        "FileEntry",
        "FileListing",
        "HttpFetch",
        "ListFiles",
        "QueryResult",
        "ReadFile",
        "SearchHit",
        "SearchResult",
        "SqlQuery",
        "TextSearch",
        "WriteFile",
    )
    assert list(tiered.tools.__all__) == sorted(tiered.tools.__all__)


def test_tool_names() -> None:
    names = [
        Calculator.name,
        ReadFile.name,
        ListFiles.name,
        WriteFile.name,
        HttpFetch.name,
        SqlQuery.name,
        TextSearch.name,
    ]
    assert names == [
        "calculator",
        "read_file",
        "list_files",
        "write_file",
        "http_fetch",
        "sql_query",
        "text_search",
    ]


@pytest.mark.parametrize("folder", ["tools", "agents"])
def test_ready_pieces_import_only_the_public_api(folder: str) -> None:
    """Ready-made pieces are written as users write theirs: public `tiered`, anyio, no openai."""
    for path in sorted((READY / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                assert top not in ("openai", "asyncio"), f"{path.name} imports {module}"
                if top == "tiered":
                    assert module == "tiered", f"{path.name} imports private {module}"


# --- Calculator -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("2+3*4", 14),
        ("(2+3)*4", 20),
        ("7 // 2", 3),
        ("7 % 4", 3),
        ("-3 ** 2", -9),
        ("2 ** -1", 0.5),
        ("10 / 4", 2.5),
        ("round(2.567, 2)", 2.57),
        ("max(1, 5, 3) - min(4, 2)", 3),
        ("sqrt(16) + abs(-2)", 6.0),
        ("floor(2.7) + ceil(2.1)", 5),
        ("log(8, 2)", 3.0),
        ("round(pi, 3)", 3.142),
        ("2 ** 100", 2**100),
    ],
)
async def test_calculator_evaluates(ctx: RunContext[Any], expression: str, value: float) -> None:
    result = await Calculator().run(Calculator.Args(expression=expression), ctx)
    assert result == value
    assert type(result) is type(value)


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("9**9**9", "more than 4096 bits"),
        ("2 ** 5000", "more than 4096 bits"),
        ("(10 ** 1000) * (10 ** 1000)", "more than 4096 bits"),
        ("10.0 ** 400", "too large"),
        ("1e308 * 10", "not a finite number"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** 0.5", "no real result"),
        ("__import__('os').system('true')", "unknown function"),
        ("(1).real", "Attribute is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("'a' * 3", "'a' is not a number"),
        ("True + 1", "True is not a number"),
        ("[1, 2]", "List is not allowed"),
        ("round(2.5, ndigits=1)", "positional arguments only"),
        ("2 +", "cannot parse"),
        ("1 if 2 else 3", "IfExp is not allowed"),
    ],
)
async def test_calculator_refuses(ctx: RunContext[Any], expression: str, why: str) -> None:
    with pytest.raises(ModelRetry, match=why) as info:
        await Calculator().run(Calculator.Args(expression=expression), ctx)
    assert "Fix the expression" in info.value.message


async def test_calculator_through_an_agent() -> None:
    model = ScriptedModel(
        [
            [
                call("calculator", {"expression": "2+3*4"}),
                call("calculator", {"expression": "9**9**9"}),
            ],
            {"result": 14},
        ]
    )
    agent = Agent(name="math", tools=[Calculator()], output_type=float)
    result = await agent.run("What is 2+3*4?", model=model)
    assert result.output == 14
    first, second = tool_results(model)
    assert (first.content, first.is_error) == ("14", False)
    assert second.is_error
    assert "more than 4096 bits" in second.content
    model.assert_complete()


# --- sandboxed files ------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A sandbox with a few files, and a secret next to it that must stay out of reach."""
    box = tmp_path / "box"
    (box / "notes").mkdir(parents=True)
    (box / "readme.txt").write_text("hello sandbox\n")
    (box / "notes" / "a.txt").write_text("alpha")
    (box / "notes" / "b.md").write_text("beta beta")
    (tmp_path / "secret.txt").write_text("top secret")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.txt").write_text("outside")
    return box


async def test_read_file(root: Path, ctx: RunContext[Any]) -> None:
    content = await ReadFile(root).run(ReadFile.Args(path="notes/a.txt"), ctx)
    assert (content.path, content.text, content.size, content.next_offset) == (
        "notes/a.txt",
        "alpha",
        5,
        None,
    )
    inner = await ReadFile(root).run(ReadFile.Args(path="notes/../readme.txt"), ctx)
    assert inner.text == "hello sandbox\n"


async def test_read_file_in_parts_without_splitting_characters(
    root: Path, ctx: RunContext[Any]
) -> None:
    (root / "long.txt").write_text("é" * 10, encoding="utf-8")  # 20 bytes
    reader = ReadFile(root, max_bytes=7)
    parts = []
    offset: int | None = 0
    while offset is not None:
        content = await reader.run(ReadFile.Args(path="long.txt", offset=offset), ctx)
        assert content.size == 20
        assert len(content.text.encode()) <= 7
        parts.append(content.text)
        offset = content.next_offset
    assert parts == ["ééé", "ééé", "ééé", "é"]


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("../secret.txt", "leads outside the sandbox"),
        ("notes/../../secret.txt", "leads outside the sandbox"),
        ("/etc/passwd", "is an absolute path"),
        ("escape/x.txt", "leads outside the sandbox"),
        ("secret-link", "leads outside the sandbox"),
        ("nul\x00byte", "NUL"),
    ],
)
async def test_sandbox_escapes_are_refused(
    root: Path, ctx: RunContext[Any], path: str, why: str
) -> None:
    (root / "escape").symlink_to(root.parent / "outside", target_is_directory=True)
    (root / "secret-link").symlink_to(root.parent / "secret.txt")
    with pytest.raises(PermissionError, match=why):
        await ReadFile(root).run(ReadFile.Args(path=path), ctx)
    writer = WriteFile(root, writable=True)
    with pytest.raises(PermissionError, match=why):
        await writer.run(WriteFile.Args(path=path, content="pwned"), ctx)
    with pytest.raises(PermissionError, match=why):
        await ListFiles(root).run(ListFiles.Args(path=path), ctx)
    assert (root.parent / "secret.txt").read_text() == "top secret"
    assert (root.parent / "outside" / "x.txt").read_text() == "outside"


async def test_symlinks_inside_the_sandbox_work(root: Path, ctx: RunContext[Any]) -> None:
    (root / "link.txt").symlink_to(root / "notes" / "a.txt")
    content = await ReadFile(root).run(ReadFile.Args(path="link.txt"), ctx)
    assert (content.path, content.text) == ("notes/a.txt", "alpha")


async def test_read_file_refusals(root: Path, ctx: RunContext[Any]) -> None:
    (root / "blob.bin").write_bytes(b"\x00\x01\x02")
    reader = ReadFile(root)
    with pytest.raises(ValueError, match="binary"):
        await reader.run(ReadFile.Args(path="blob.bin"), ctx)
    with pytest.raises(IsADirectoryError, match="list_files"):
        await reader.run(ReadFile.Args(path="notes"), ctx)
    with pytest.raises(FileNotFoundError, match=r"'nope\.txt' does not exist") as info:
        await reader.run(ReadFile.Args(path="nope.txt"), ctx)
    assert str(root) not in str(info.value)  # the model never learns where the sandbox is


def test_sandbox_root_must_exist(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not an existing directory"):
        ReadFile(tmp_path / "missing")


async def test_list_files(root: Path, ctx: RunContext[Any]) -> None:
    (root / "escape").symlink_to(root.parent / "outside", target_is_directory=True)
    (root / "secret-link").symlink_to(root.parent / "secret.txt")
    lister = ListFiles(root)
    top = await lister.run(ListFiles.Args(), ctx)
    assert top.path == "."
    assert [(e.path, e.kind, e.size) for e in top.entries] == [
        ("notes", "dir", None),
        ("readme.txt", "file", 14),
    ]
    everything = await lister.run(ListFiles.Args(recursive=True), ctx)
    assert [e.path for e in everything.entries] == [
        "notes",
        "notes/a.txt",
        "notes/b.md",
        "readme.txt",
    ]
    assert not everything.truncated
    capped = await ListFiles(root, max_entries=2).run(ListFiles.Args(recursive=True), ctx)
    assert ([e.path for e in capped.entries], capped.truncated) == (["notes", "notes/a.txt"], True)
    with pytest.raises(NotADirectoryError):
        await lister.run(ListFiles.Args(path="readme.txt"), ctx)


async def test_write_file_is_off_unless_writable(root: Path, ctx: RunContext[Any]) -> None:
    with pytest.raises(PermissionError, match="writable=True"):
        await WriteFile(root).run(WriteFile.Args(path="new.txt", content="x"), ctx)
    assert not (root / "new.txt").exists()


async def test_write_file(root: Path, ctx: RunContext[Any]) -> None:
    writer = WriteFile(root, writable=True, max_bytes=10)
    said = await writer.run(WriteFile.Args(path="out/new.txt", content="one"), ctx)
    assert said == "wrote 3 bytes to out/new.txt"
    said = await writer.run(WriteFile.Args(path="out/new.txt", content="+two", append=True), ctx)
    assert said == "appended 4 bytes to out/new.txt"
    assert (root / "out" / "new.txt").read_text() == "one+two"
    await writer.run(WriteFile.Args(path="out/new.txt", content="over"), ctx)
    assert (root / "out" / "new.txt").read_text() == "over"
    with pytest.raises(ValueError, match="at most 10"):
        await writer.run(WriteFile.Args(path="big.txt", content="x" * 11), ctx)
    with pytest.raises(IsADirectoryError):
        await writer.run(WriteFile.Args(path="notes", content="x"), ctx)


async def test_file_tools_through_an_agent(root: Path) -> None:
    model = ScriptedModel(
        [
            [
                call("read_file", {"path": "../secret.txt", "offset": None}),
                call("read_file", {"path": "readme.txt", "offset": 0}),
            ],
            [call("write_file", {"path": "x.txt", "content": "hi", "append": None})],
            "done",
        ]
    )
    agent = Agent(name="files", tools=[ReadFile(root), ListFiles(root), WriteFile(root)])
    result = await agent.run("read things", model=model)
    assert result.output == "done"
    denied, readme, write = (m for m in result.messages if isinstance(m, ToolResultMessage))
    assert denied.is_error
    assert "leads outside the sandbox" in denied.content
    assert "top secret" not in denied.content
    assert json.loads(readme.content)["text"] == "hello sandbox\n"
    assert write.is_error
    assert "writable=True" in write.content


# --- HttpFetch ------------------------------------------------------------------------


Handler = Callable[[httpx2.Request], httpx2.Response]


@pytest.fixture
def seen() -> list[httpx2.Request]:
    return []


def mock(seen: list[httpx2.Request], handler: Handler) -> httpx2.MockTransport:
    def record(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return handler(request)

    return httpx2.MockTransport(record)


def page(request: httpx2.Request) -> httpx2.Response:
    return httpx2.Response(200, text=f"page at {request.url.path}", headers={"x": "y"})


async def test_http_fetch(seen: list[httpx2.Request], ctx: RunContext[Any]) -> None:
    fetch = HttpFetch(["docs.example.com"], transport=mock(seen, page))
    result = await fetch.run(HttpFetch.Args(url="https://docs.example.com/a?b=1"), ctx)
    assert result.status == 200
    assert result.content_type == "text/plain; charset=utf-8"
    assert result.text == "page at /a"
    assert not result.truncated
    assert [str(r.url) for r in seen] == ["https://docs.example.com/a?b=1"]
    assert seen[0].method == "GET"


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.com/",
        "https://example.com/",  # `*.example.com` does not include the apex
        "https://notexample.com/",
        "https://docs.example.com.evil.com/",
        "https://docs.example.com@evil.com/",  # userinfo trick
        "http://127.0.0.1/",
    ],
)
async def test_http_fetch_refuses_other_hosts_before_connecting(
    seen: list[httpx2.Request], ctx: RunContext[Any], url: str
) -> None:
    fetch = HttpFetch(["*.example.com", "api.test"], transport=mock(seen, page))
    with pytest.raises(PermissionError, match="is not allowed"):
        await fetch.run(HttpFetch.Args(url=url), ctx)
    assert seen == []


async def test_http_fetch_host_patterns(seen: list[httpx2.Request], ctx: RunContext[Any]) -> None:
    fetch = HttpFetch(["*.Example.com", "API.test."], transport=mock(seen, page))
    assert fetch.definition().description.endswith("Allowed hosts: *.example.com, api.test.")
    assert HttpFetch.description.endswith("a URL on any other host is refused.")
    assert fetch.allows("a.example.com")
    assert fetch.allows("a.b.example.com")
    assert fetch.allows("api.test")
    assert not fetch.allows("example.com")
    assert not fetch.allows("xapi.test")
    await fetch.run(HttpFetch.Args(url="http://deep.sub.example.com/"), ctx)
    assert len(seen) == 1


@pytest.mark.parametrize(
    "url", ["ftp://docs.example.com/x", "file:///etc/passwd", "docs.example.com"]
)
async def test_http_fetch_wants_an_http_url(
    seen: list[httpx2.Request], ctx: RunContext[Any], url: str
) -> None:
    fetch = HttpFetch(["docs.example.com"], transport=mock(seen, page))
    with pytest.raises(ModelRetry, match="absolute http"):
        await fetch.run(HttpFetch.Args(url=url), ctx)
    assert seen == []


async def test_http_fetch_checks_every_redirect(
    seen: list[httpx2.Request], ctx: RunContext[Any]
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/moved":
            return httpx2.Response(302, headers={"location": "/here"})
        if request.url.path == "/away":
            return httpx2.Response(301, headers={"location": "https://evil.com/steal"})
        return page(request)

    fetch = HttpFetch(["docs.example.com"], transport=mock(seen, handler))
    result = await fetch.run(HttpFetch.Args(url="https://docs.example.com/moved"), ctx)
    assert (result.url, result.text) == ("https://docs.example.com/here", "page at /here")
    seen.clear()
    with pytest.raises(PermissionError, match=r"'evil\.com' is not allowed"):
        await fetch.run(HttpFetch.Args(url="https://docs.example.com/away"), ctx)
    assert [r.url.host for r in seen] == ["docs.example.com"]


async def test_http_fetch_stops_redirect_loops(
    seen: list[httpx2.Request], ctx: RunContext[Any]
) -> None:
    def loop(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(307, headers={"location": "/again"})

    fetch = HttpFetch(["docs.example.com"], max_redirects=3, transport=mock(seen, loop))
    with pytest.raises(ValueError, match="more than 3 redirects"):
        await fetch.run(HttpFetch.Args(url="https://docs.example.com/"), ctx)
    assert len(seen) == 4


async def test_http_fetch_truncates_and_hides_binary(
    seen: list[httpx2.Request], ctx: RunContext[Any]
) -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/big":
            return httpx2.Response(200, text="x" * 1000, headers={"content-type": "text/html"})
        if request.url.path == "/missing":
            return httpx2.Response(404, json={"error": "no such page"})
        return httpx2.Response(200, content=b"\x89PNG", headers={"content-type": "image/png"})

    fetch = HttpFetch(["docs.example.com"], max_bytes=100, transport=mock(seen, handler))
    big = await fetch.run(HttpFetch.Args(url="https://docs.example.com/big"), ctx)
    assert (big.text, big.truncated) == ("x" * 100, True)
    missing = await fetch.run(HttpFetch.Args(url="https://docs.example.com/missing"), ctx)
    assert (missing.status, json.loads(missing.text)) == (404, {"error": "no such page"})
    image = await fetch.run(HttpFetch.Args(url="https://docs.example.com/img"), ctx)
    assert image.text == "(binary content of type image/png not shown)"


async def test_http_fetch_with_a_shared_client(
    seen: list[httpx2.Request], ctx: RunContext[Any]
) -> None:
    async with httpx2.AsyncClient(transport=mock(seen, page), follow_redirects=True) as client:
        fetch = HttpFetch(["docs.example.com"], client=client)
        result = await fetch.run(HttpFetch.Args(url="https://docs.example.com/x"), ctx)
    assert result.text == "page at /x"


def test_http_fetch_configuration_errors() -> None:
    with pytest.raises(UserError, match="at least one allowed host"):
        HttpFetch([])
    with pytest.raises(UserError, match="no scheme or path"):
        HttpFetch(["https://example.com"])
    with pytest.raises(UserError, match="no scheme or path"):
        HttpFetch(["ex*ample.com"])


async def test_http_fetch_through_an_agent(seen: list[httpx2.Request]) -> None:
    model = ScriptedModel(
        [
            [
                call("http_fetch", {"url": "https://evil.com/"}),
                call("http_fetch", {"url": "https://docs.example.com/ok"}),
            ],
            "fetched",
        ]
    )
    agent = Agent(name="web", tools=[HttpFetch(["docs.example.com"], transport=mock(seen, page))])
    await agent.run("fetch", model=model)
    refused, fetched = tool_results(model)
    assert refused.is_error
    assert "'evil.com' is not allowed" in refused.content
    assert json.loads(fetched.content)["text"] == "page at /ok"
    assert [r.url.host for r in seen] == ["docs.example.com"]


# --- SqlQuery -------------------------------------------------------------------------


def make_db(conn: sqlite3.Connection) -> None:
    conn.executescript(
        """
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, cents INTEGER, note BLOB);
        INSERT INTO orders (customer, cents, note) VALUES
            ('ada', 1200, NULL), ('bob', 450, x'00ff'), ('cy', 999, NULL);
        """
    )
    conn.commit()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as conn:
        make_db(conn)
    conn.close()
    return path


@pytest.fixture
def shared() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    make_db(conn)
    yield conn
    conn.close()


def order_count(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        (n,) = conn.execute("SELECT count(*) FROM orders").fetchone()
    finally:
        conn.close()
    return int(n)


async def test_sql_query(db_path: Path, ctx: RunContext[Any]) -> None:
    result = await SqlQuery(db_path).run(
        SqlQuery.Args(sql="SELECT customer, cents, note FROM orders ORDER BY id"), ctx
    )
    assert result.columns == ["customer", "cents", "note"]
    assert result.rows == [
        ["ada", 1200, None],
        ["bob", 450, "<blob of 2 bytes>"],
        ["cy", 999, None],
    ]
    assert not result.truncated


async def test_sql_query_caps_rows_and_cells(db_path: Path, ctx: RunContext[Any]) -> None:
    query = SqlQuery(db_path, max_rows=2, max_cell_chars=3)
    result = await query.run(SqlQuery.Args(sql="SELECT customer FROM orders ORDER BY id"), ctx)
    assert (result.rows, result.truncated) == ([["ada"], ["bob"]], True)
    long = await query.run(SqlQuery.Args(sql="SELECT 'abcdef' AS s"), ctx)
    assert long.rows == [["abc…"]]


async def test_sql_query_allows_reading_forms(db_path: Path, ctx: RunContext[Any]) -> None:
    query = SqlQuery(db_path)
    for sql in [
        "-- a comment\nselect count(*) from orders;",
        "/* block */ WITH big AS (SELECT * FROM orders WHERE cents > 500) SELECT count(*) FROM big",
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3) "
        "SELECT sum(x) FROM n",
        "EXPLAIN QUERY PLAN SELECT * FROM orders",
        "SELECT name, sql FROM sqlite_master",
    ]:
        result = await query.run(SqlQuery.Args(sql=sql), ctx)
        assert result.rows, sql


WRITES = [
    ("DELETE FROM orders", PermissionError, "DELETE statement is not allowed"),
    ("  /* hi */ DROP TABLE orders", PermissionError, "DROP statement is not allowed"),
    ("SELECT 1; DROP TABLE orders", ModelRetry, "one statement"),
    ("SELECT 1; DELETE FROM orders;", ModelRetry, "one statement"),
    ("WITH x AS (SELECT 1) DELETE FROM orders", PermissionError, "read-only"),
    ("WITH x AS (SELECT 1) INSERT INTO orders (customer) VALUES ('eve')", PermissionError, "read"),
    ("WITH x AS (SELECT 1) UPDATE orders SET cents = 0", PermissionError, "read-only"),
    ("EXPLAIN DELETE FROM orders", PermissionError, "read-only"),
    ("ATTACH DATABASE ':memory:' AS other", PermissionError, "ATTACH statement"),
    ("PRAGMA query_only = OFF", PermissionError, "PRAGMA statement"),
    ("VACUUM", PermissionError, "VACUUM statement"),
    ("", PermissionError, "an empty statement"),
    ("SELECT * FROM pragma_table_info('orders')", PermissionError, "read-only"),
]


@pytest.mark.parametrize(("sql", "error", "why"), WRITES)
async def test_sql_query_refuses_writes_on_a_path(
    db_path: Path, ctx: RunContext[Any], sql: str, error: type[Exception], why: str
) -> None:
    with pytest.raises(error, match=why):
        await SqlQuery(db_path).run(SqlQuery.Args(sql=sql), ctx)
    assert order_count(db_path) == 3


@pytest.mark.parametrize(("sql", "error", "why"), WRITES)
async def test_sql_query_refuses_writes_on_a_connection(
    shared: sqlite3.Connection, ctx: RunContext[Any], sql: str, error: type[Exception], why: str
) -> None:
    with pytest.raises(error, match=why):
        await SqlQuery(shared).run(SqlQuery.Args(sql=sql), ctx)
    assert shared.execute("SELECT count(*) FROM orders").fetchone() == (3,)
    # the guards are lifted afterwards: the owner can still write
    assert shared.execute("PRAGMA query_only").fetchone() == (0,)
    shared.execute("INSERT INTO orders (customer) VALUES ('owner')")
    assert shared.execute("SELECT count(*) FROM orders").fetchone() == (4,)


async def test_sql_query_errors_the_model_can_fix(db_path: Path, ctx: RunContext[Any]) -> None:
    with pytest.raises(ModelRetry, match=r"no such table: order_lines.*sqlite_master"):
        await SqlQuery(db_path).run(SqlQuery.Args(sql="SELECT * FROM order_lines"), ctx)


async def test_sql_query_missing_database(tmp_path: Path, ctx: RunContext[Any]) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        await SqlQuery(tmp_path / "none.db").run(SqlQuery.Args(sql="SELECT 1"), ctx)
    assert not (tmp_path / "none.db").exists()


async def test_sql_query_needs_a_thread_safe_connection(ctx: RunContext[Any]) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        with pytest.raises(UserError, match="check_same_thread=False"):
            await SqlQuery(conn).run(SqlQuery.Args(sql="SELECT 1"), ctx)
    finally:
        conn.close()


async def test_sql_query_stops_when_cancelled(
    shared: sqlite3.Connection, ctx: RunContext[Any]
) -> None:
    query = SqlQuery(shared)
    forever = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT max(x) FROM n"
    with anyio.move_on_after(0.2) as scope:
        await query.run(SqlQuery.Args(sql=forever), ctx)
    assert scope.cancelled_caught
    # the abandoned worker stops at its next progress check and frees the connection
    with anyio.fail_after(5):
        result = await query.run(SqlQuery.Args(sql="SELECT count(*) FROM orders"), ctx)
    assert result.rows == [[3]]


async def test_sql_query_through_an_agent(db_path: Path) -> None:
    model = ScriptedModel(
        [
            [
                call("sql_query", {"sql": "SELECT 1; DROP TABLE orders"}),
                call("sql_query", {"sql": "SELECT sum(cents) AS total FROM orders"}),
            ],
            {"result": 2649},
        ]
    )
    agent = Agent(name="analyst", tools=[SqlQuery(db_path)], output_type=int)
    result = await agent.run("total revenue in cents?", model=model)
    assert result.output == 2649
    refused, total = tool_results(model)
    assert refused.is_error
    assert "one statement" in refused.content
    assert json.loads(total.content) == {"columns": ["total"], "rows": [[2649]], "truncated": False}
    assert order_count(db_path) == 3


# --- TextSearch -----------------------------------------------------------------------

DOCS = {
    "refunds": "Refunds are issued within 14 days of a return. The refund goes to the card used.",
    "shipping": "Shipping takes 3 to 5 days. Express shipping is available for a fee.",
    "returns": "Items can be returned within 30 days. Returns must be unused and in the box.",
    "privacy": "We never sell your data. The data we keep is listed in the privacy policy.",
}


async def test_text_search_ranks_and_snippets(ctx: RunContext[Any]) -> None:
    search = TextSearch(DOCS, snippet_chars=40)
    result = await search.run(TextSearch.Args(query="how long does a REFUND take?"), ctx)
    assert [h.id for h in result.hits][:1] == ["refunds"]
    top = result.hits[0]
    assert "The refund goes" in top.snippet  # whole words: "Refunds" is another word
    assert len(top.snippet) <= 42
    assert all(a.score >= b.score for a, b in zip(result.hits, result.hits[1:], strict=False))


async def test_text_search_prefers_rare_terms(ctx: RunContext[Any]) -> None:
    result = await TextSearch(DOCS).run(TextSearch.Args(query="the express days"), ctx)
    assert result.hits[0].id == "shipping"


async def test_text_search_top_k_and_no_match(ctx: RunContext[Any]) -> None:
    search = TextSearch(DOCS, max_results=2)
    many = await search.run(TextSearch.Args(query="days", top_k=10), ctx)
    assert len(many.hits) == 2
    one = await search.run(TextSearch.Args(query="days", top_k=1), ctx)
    assert len(one.hits) == 1
    none = await search.run(TextSearch.Args(query="unicorns"), ctx)
    assert none.hits == []


def test_text_search_needs_documents() -> None:
    with pytest.raises(UserError, match="at least one document"):
        TextSearch({})


async def test_text_search_through_an_agent() -> None:
    model = ScriptedModel([call("text_search", {"query": "privacy data", "top_k": None}), "ok"])
    await Agent(name="searcher", tools=[TextSearch(DOCS)]).run("find it", model=model)
    (found,) = tool_results(model)
    assert json.loads(found.content)["hits"][0]["id"] == "privacy"


def test_tool_schemas_are_strict() -> None:
    """Every ready tool's schema is strict-mode ready: all fields required, nothing extra."""
    for tool in [
        Calculator(),
        ReadFile(os.getcwd()),
        ListFiles(os.getcwd()),
        WriteFile(os.getcwd()),
        HttpFetch(["example.com"]),
        SqlQuery(":memory:"),
        TextSearch({"a": "b"}),
    ]:
        schema = tool.definition().parameters
        assert schema["additionalProperties"] is False
        assert schema["required"] == list(schema["properties"])
        assert tool.description
