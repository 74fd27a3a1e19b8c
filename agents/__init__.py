"""Ready-made executor agents with typed input and output. Import as `tiered.agents`.

Nano tier for classification, extraction, ranking and summaries; mini for verification.
"""

from ._classifier import Classification, Classifier, ClassifyInput
from ._extractor import ExtractedField, ExtractInput, Extraction, Extractor, FieldSpec
from ._reranker import Candidate, RankedCandidate, Ranking, Reranker, RerankInput
from ._summarizer import SummarizeInput, Summarizer, Summary
from ._verifier import Verdict, Verifier, VerifyInput

__all__ = (
    "Candidate",
    "Classification",
    "Classifier",
    "ClassifyInput",
    "ExtractInput",
    "ExtractedField",
    "Extraction",
    "Extractor",
    "FieldSpec",
    "RankedCandidate",
    "Ranking",
    "RerankInput",
    "Reranker",
    "SummarizeInput",
    "Summarizer",
    "Summary",
    "Verdict",
    "Verifier",
    "VerifyInput",
)
