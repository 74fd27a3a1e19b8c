"""`TextSearch`: BM25 ranking over a small in-memory corpus, with snippets."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, Field

from tiered import RunContext, Tool, UserError

__all__ = ("SearchHit", "SearchResult", "TextSearch")

_WORD = re.compile(r"\w+")


def _terms(text: str) -> list[str]:
    return [m.group().casefold() for m in _WORD.finditer(text)]


class SearchHit(BaseModel):
    """One matching document."""

    id: str
    score: float
    snippet: str
    """Text around the first match of the rarest query term in the document."""


class SearchResult(BaseModel):
    """The best matches, best first; empty when no document contains a query term."""

    hits: list[SearchHit]


class TextSearch(Tool):
    """Search the documents for words and return the best-matching ids with snippets.

    Matching is by whole words, case-insensitive, ranked by BM25 (rare words count more).
    """

    def __init__(
        self,
        documents: Mapping[str, str],
        *,
        max_results: int = 10,
        snippet_chars: int = 240,
        k1: float = 1.2,
        b: float = 0.75,
    ) -> None:
        """Index `documents` (id -> text) once; searches then cost one pass over matches."""
        if not documents:
            raise UserError("TextSearch needs at least one document")
        self._texts = dict(documents)
        self._tf = {doc_id: Counter(_terms(text)) for doc_id, text in self._texts.items()}
        self._length = {doc_id: sum(tf.values()) for doc_id, tf in self._tf.items()}
        self._average = max(1.0, sum(self._length.values()) / len(self._length))
        df: Counter[str] = Counter()
        for tf in self._tf.values():
            df.update(tf.keys())
        n = len(self._texts)
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
        self.max_results = max_results
        self.snippet_chars = snippet_chars
        self._k1 = k1
        self._b = b

    class Args(BaseModel):
        query: str = Field(description="Words to look for")
        top_k: int = Field(5, ge=1, description="How many results to return at most")

    async def run(self, args: Args, ctx: RunContext[Any]) -> SearchResult:
        """Rank every document against `args.query` and return the top ones.

        In a worker thread the run abandons on cancel: a large corpus never holds it.
        """
        top_k = min(args.top_k, self.max_results)
        result: SearchResult = await anyio.to_thread.run_sync(
            self.search, args.query, top_k, abandon_on_cancel=True
        )
        return result

    def search(self, query: str, top_k: int) -> SearchResult:
        """The `top_k` best documents for `query` (also usable without a model)."""
        terms = [t for t in dict.fromkeys(_terms(query)) if t in self._idf]
        scored: list[tuple[float, int, str]] = []
        for order, (doc_id, tf) in enumerate(self._tf.items()):
            norm = self._k1 * (1 - self._b + self._b * self._length[doc_id] / self._average)
            score = sum(
                self._idf[t] * tf[t] * (self._k1 + 1) / (tf[t] + norm) for t in terms if t in tf
            )
            if score > 0:
                scored.append((-score, order, doc_id))
        scored.sort()
        return SearchResult(
            hits=[
                SearchHit(id=doc_id, score=round(-neg, 4), snippet=self._snippet(doc_id, terms))
                for neg, _, doc_id in scored[:top_k]
            ]
        )

    def _snippet(self, doc_id: str, terms: list[str]) -> str:
        text = self._texts[doc_id]
        present = [t for t in terms if self._tf[doc_id][t]]
        rarest = max(present, key=lambda t: self._idf[t])
        at = next(m.start() for m in _WORD.finditer(text) if m.group().casefold() == rarest)
        start = max(0, at - self.snippet_chars // 3)
        end = min(len(text), start + self.snippet_chars)
        start = max(0, end - self.snippet_chars)
        snippet = " ".join(text[start:end].split())
        return ("…" if start else "") + snippet + ("…" if end < len(text) else "")
