"""Knowledge base: article import, bilingual search, evaluation."""

from zhiban.kb.evaluate import EvalResult, evaluate_search, format_eval
from zhiban.kb.parse import ArticleDraft, iter_corpus, parse_article
from zhiban.kb.search import Document, Hit, SearchIndex, SearchParams

__all__ = [
    "ArticleDraft",
    "Document",
    "EvalResult",
    "Hit",
    "SearchIndex",
    "SearchParams",
    "evaluate_search",
    "format_eval",
    "iter_corpus",
    "parse_article",
]
