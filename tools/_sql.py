"""`SqlQuery`: read-only SQL over a SQLite database, guarded three ways.

A statement allow-list (one SELECT, WITH or EXPLAIN), an authorizer that denies every
action but reading, and a read-only connection (`mode=ro` for a path, `PRAGMA
query_only` always). The query runs in a worker thread; a progress handler stops it
when the call is cancelled or times out.

Results are bounded inside SQLite, before Python sees them: the query is wrapped so
each text cell comes back cut to `max_cell_chars` (a blob as its length only) and at
most `max_rows + 1` rows are produced; rows are fetched one at a time until
`max_result_chars` is reached. A 1 MB cell never becomes a 1 MB Python string.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, Field

from tiered import ModelRetry, RunContext, Tool, UserError

__all__ = ("QueryResult", "SqlQuery")

_ALLOWED_STATEMENTS = frozenset({"SELECT", "WITH", "EXPLAIN"})
_ALLOWED_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*(\w*)", re.DOTALL)
_MAX_VALUE_BYTES = 10_000_000
"""SQLITE_LIMIT_LENGTH on connections we open: no 1 GB `randomblob` in a worker thread."""

Cell = int | float | str | None


class QueryResult(BaseModel):
    """Columns and rows of one query."""

    columns: list[str]
    rows: list[list[Cell]]
    truncated: bool
    """True when there were more than `max_rows` rows; refine the query or use LIMIT."""


def _first_keyword(sql: str) -> str:
    match = _LEADING.match(sql)
    return match.group(1).upper() if match else ""


def _authorize(action: int, *_: str | None) -> int:
    return sqlite3.SQLITE_OK if action in _ALLOWED_ACTIONS else sqlite3.SQLITE_DENY


class SqlQuery(Tool):
    """Run one read-only SQL query (SQLite dialect) and return the columns and rows.

    Only a single SELECT, WITH ... SELECT or EXPLAIN statement is allowed. To see the
    tables and their columns: SELECT name, sql FROM sqlite_master
    """

    def __init__(
        self,
        database: str | os.PathLike[str] | sqlite3.Connection,
        *,
        max_rows: int = 200,
        max_cell_chars: int = 2_000,
        max_result_chars: int = 100_000,
    ) -> None:
        """`database` is a file path (opened read-only per call) or an open connection.

        A connection must be made with `check_same_thread=False` (queries run in a worker
        thread). During a query it is set to `query_only` and given an authorizer, both
        removed afterwards (any authorizer of your own is cleared); calls are serialized.
        """
        if isinstance(database, sqlite3.Connection):
            self._connection: sqlite3.Connection | None = database
            self._uri = ""
        else:
            self._connection = None
            self._path = Path(database).expanduser().resolve()
            self._uri = self._path.as_uri() + "?mode=ro"
        self._lock = threading.Lock()
        self.max_rows = max_rows
        self.max_cell_chars = max_cell_chars
        self.max_result_chars = max_result_chars
        """Rows stop (and `truncated` is set) once the cells hold this many characters."""

    class Args(BaseModel):
        sql: str = Field(description="One SELECT, WITH ... SELECT or EXPLAIN statement")

    async def run(self, args: Args, ctx: RunContext[Any]) -> QueryResult:
        """Check the statement, then run it in a worker thread."""
        keyword = _first_keyword(args.sql)
        if keyword not in _ALLOWED_STATEMENTS:
            raise PermissionError(
                f"{keyword or 'an empty'} statement is not allowed: this database is read-only "
                "and accepts one SELECT, WITH ... SELECT or EXPLAIN statement"
            )
        stop = threading.Event()
        try:
            return await anyio.to_thread.run_sync(
                self._query, args.sql, stop, abandon_on_cancel=True
            )
        finally:
            stop.set()

    def _query(self, sql: str, stop: threading.Event) -> QueryResult:
        if self._connection is None:
            if not self._path.is_file():
                raise FileNotFoundError(f"database file {str(self._path)!r} does not exist")
            conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
            try:
                conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
                conn.execute("PRAGMA query_only = ON")
                return self._guarded(conn, sql, stop)
            finally:
                conn.close()
        with self._lock:
            conn = self._connection
            try:
                (was_query_only,) = conn.execute("PRAGMA query_only").fetchone()
                conn.execute("PRAGMA query_only = ON")
            except sqlite3.ProgrammingError as exc:
                raise UserError(
                    f"SqlQuery cannot use this connection ({exc}); open it with "
                    "sqlite3.connect(..., check_same_thread=False)"
                ) from None
            length = conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _MAX_VALUE_BYTES)
            try:
                return self._guarded(conn, sql, stop)
            finally:
                conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
                conn.execute(f"PRAGMA query_only = {int(was_query_only)}")

    def _guarded(self, conn: sqlite3.Connection, sql: str, stop: threading.Event) -> QueryResult:
        conn.set_authorizer(_authorize)
        conn.set_progress_handler(lambda: int(stop.is_set()), 10_000)
        try:
            cursor = conn.execute(sql)  # runs to the first row; no cell reaches Python yet
            columns = [d[0] for d in cursor.description or ()]
            cursor.close()
            bounded = bool(columns) and _first_keyword(sql) != "EXPLAIN"
            if bounded:
                try:
                    cursor = conn.execute(self._bounded(sql, len(columns)))
                except sqlite3.OperationalError as exc:
                    if "syntax error" not in str(exc):
                        raise
                    bounded = False  # a form the wrapper cannot hold: rows are still cut one by one
            if not bounded:
                cursor = conn.execute(sql)
            try:
                rows, truncated = self._fetch(cursor, bounded)
            finally:
                cursor.close()
        except sqlite3.ProgrammingError as exc:
            if "one statement" not in str(exc):
                raise
            raise ModelRetry(f"{exc} Send exactly one statement, without a second one.") from None
        except sqlite3.DatabaseError as exc:
            message = str(exc)
            if "not authorized" in message or "readonly" in message:
                raise PermissionError(
                    "the query tried to change the database or use something other than "
                    "reading tables; this database is read-only: only read data with SELECT"
                ) from None
            raise ModelRetry(
                f"SQL error: {message}. Fix the query; list the tables with "
                "SELECT name, sql FROM sqlite_master"
            ) from None
        finally:
            conn.set_authorizer(None)
            conn.set_progress_handler(None, 0)
        return QueryResult(columns=columns, rows=rows, truncated=truncated)

    def _bounded(self, sql: str, width: int) -> str:
        """`sql` wrapped so SQLite itself cuts every cell and stops after `max_rows + 1` rows.

        Each column becomes two: the value (text cut to one character more than allowed,
        so a cut shows; NULL for a blob) and the blob's length (else NULL).
        """
        names = [f"_c{i}" for i in range(width)]
        cut = self.max_cell_chars + 1
        cells = []
        for c in names:
            cells.append(
                f"CASE typeof({c}) WHEN 'blob' THEN NULL WHEN 'text' THEN substr({c}, 1, {cut}) "
                f"ELSE {c} END"
            )
            cells.append(f"CASE typeof({c}) WHEN 'blob' THEN length({c}) END")
        return (
            f"WITH _tiered_q({', '.join(names)}) AS (\n{sql.rstrip().rstrip(';')}\n) "
            f"SELECT {', '.join(cells)} FROM _tiered_q LIMIT {self.max_rows + 1}"
        )

    def _fetch(self, cursor: sqlite3.Cursor, bounded: bool) -> tuple[list[list[Cell]], bool]:
        """Rows one at a time, until `max_rows` or `max_result_chars`; and whether cut."""
        rows: list[list[Cell]] = []
        size = 0
        while (row := cursor.fetchone()) is not None:
            if len(rows) == self.max_rows:
                return rows, True
            if bounded:
                cells = [
                    f"<blob of {row[i + 1]} bytes>"
                    if row[i + 1] is not None
                    else self._cell(row[i])
                    for i in range(0, len(row), 2)
                ]
            else:
                cells = [self._cell(v) for v in row]
            size += sum(len(c) if isinstance(c, str) else 8 for c in cells)
            if size > self.max_result_chars:
                return rows, True
            rows.append(cells)
        return rows, False

    def _cell(self, value: object) -> Cell:
        if isinstance(value, bytes):
            return f"<blob of {len(value)} bytes>"
        if isinstance(value, str) and len(value) > self.max_cell_chars:
            return value[: self.max_cell_chars] + "…"
        if value is None or isinstance(value, int | float | str):
            return value
        return str(value)
