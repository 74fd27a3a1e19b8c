"""Ready-made tools: arithmetic, sandboxed files, allow-listed HTTP, read-only SQL, text search.

Each is a `tiered.Tool`; give instances to an agent's `tools`. Import as `tiered.tools`.
"""

from ._calculator import Calculator
from ._files import FileContent, FileEntry, FileListing, ListFiles, ReadFile, WriteFile
from ._http import FetchResult, HttpFetch
from ._search import SearchHit, SearchResult, TextSearch
from ._sql import QueryResult, SqlQuery

__all__ = (
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
