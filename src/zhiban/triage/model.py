"""Ticket triage: domain classification (TF-IDF + calibrated linear SVM) and a suggested priority."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from zhiban.core.errors import InvalidInput
from zhiban.core.text import tokenize

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# scikit-learn, numpy and joblib take seconds to import: they load when a model is trained or used,
# not when the desk starts.

DOMAINS = (
    "network",
    "video",
    "audio",
    "signaling_join",
    "auth_token",
    "sdk_integration",
    "recording_streaming",
    "billing_account",
    "server_deployment",
)
PRIORITIES = ("P1", "P2", "P3", "P4")
MAX_SUBJECT_CHARS = 500
MAX_BODY_CHARS = 50_000
# Calibration splits each class in this many folds: a class needs at least this many examples.
CALIBRATION_FOLDS = 3
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class TriageExample:
    """A labelled ticket."""

    subject: str
    body: str
    domain: str
    lang: str = ""

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise InvalidInput(f"unknown triage domain {self.domain!r}; expected one of {DOMAINS}")
        _check_sizes(self.subject, self.body)


@dataclass(frozen=True)
class Prediction:
    """The most likely domain, its calibrated probability, and every domain ranked."""

    domain: str
    confidence: float
    ranked: tuple[tuple[str, float], ...]


def _check_sizes(subject: str, body: str) -> None:
    if len(subject) > MAX_SUBJECT_CHARS:
        raise InvalidInput(f"subject is {len(subject)} characters; the limit is {MAX_SUBJECT_CHARS}")
    if len(body) > MAX_BODY_CHARS:
        raise InvalidInput(f"body is {len(body)} characters; the limit is {MAX_BODY_CHARS}")


def ticket_text(subject: str, body: str) -> str:
    """What the classifier reads: the subject twice (it is the customer's own summary), then the body."""
    return f"{subject}\n{subject}\n{body}"


def parse_examples(lines: Iterable[str]) -> list[TriageExample]:
    """JSONL lines {"subject", "body", "domain", "lang"} (blank lines skipped)."""
    out: list[TriageExample] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"ticket line {number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in ("subject", "body", "domain")):
            raise InvalidInput(f"ticket line {number}: expected string subject, body and domain")
        out.append(TriageExample(row["subject"], row["body"], row["domain"], str(row.get("lang", ""))))
    return out


def _pipeline() -> Pipeline:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.svm import LinearSVC

    features = FeatureUnion(
        [
            # Character n-grams read Chinese without segmentation and survive typos and error codes.
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1, max_features=60_000
                ),
            ),
            # Words (jieba + stems) add whole-term evidence: 卡顿, joinchannel, 109.
            (
                "words",
                TfidfVectorizer(
                    tokenizer=tokenize, lowercase=False, token_pattern=None, sublinear_tf=True, ngram_range=(1, 2)
                ),
            ),
        ]
    )
    classifier = CalibratedClassifierCV(LinearSVC(C=0.5), method="sigmoid", cv=CALIBRATION_FOLDS)
    return Pipeline([("features", features), ("classifier", classifier)])


class TriageModel:
    """A trained domain classifier that keeps its training examples, so corrections can be added."""

    def __init__(self, pipeline: Pipeline, examples: Sequence[TriageExample]) -> None:
        self._pipeline = pipeline
        self.examples: tuple[TriageExample, ...] = tuple(examples)

    @classmethod
    def train(cls, examples: Iterable[TriageExample]) -> TriageModel:
        """Fit on labelled tickets; every domain present needs at least CALIBRATION_FOLDS examples."""
        examples = list(examples)
        counts: dict[str, int] = {}
        for example in examples:
            counts[example.domain] = counts.get(example.domain, 0) + 1
        if len(counts) < 2:
            raise InvalidInput("triage needs examples of at least two domains")
        thin = sorted(d for d, c in counts.items() if c < CALIBRATION_FOLDS)
        if thin:
            raise InvalidInput(f"domains with fewer than {CALIBRATION_FOLDS} examples: {', '.join(thin)}")
        pipeline = _pipeline()
        pipeline.fit([ticket_text(e.subject, e.body) for e in examples], [e.domain for e in examples])
        return cls(pipeline, examples)

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self._pipeline.classes_)

    def predict(self, subject: str, body: str) -> Prediction:
        """The likely domain of a ticket, with calibrated probabilities for every domain."""
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, tickets: Sequence[tuple[str, str]]) -> list[Prediction]:
        """`predict` for many (subject, body) at once: one pass of the pipeline (its per-call cost dominates)."""
        if not tickets:
            return []
        for subject, body in tickets:
            _check_sizes(subject, body)
        import numpy as np

        domains = self.domains
        found = []
        for probabilities in self._pipeline.predict_proba([ticket_text(s, b) for s, b in tickets]):
            order = np.argsort(-probabilities)
            ranked = tuple((domains[i], float(probabilities[i])) for i in order)
            found.append(Prediction(ranked[0][0], ranked[0][1], ranked))
        return found

    def with_corrections(self, corrections: Iterable[TriageExample]) -> TriageModel:
        """A model retrained with agents' corrections appended to the training examples."""
        return TriageModel.train([*self.examples, *corrections])

    def to_bytes(self) -> bytes:
        """Serialized model (joblib); load only bytes this desk wrote itself — it is a pickle."""
        buffer = io.BytesIO()
        state: dict[str, Any] = {"version": _FORMAT_VERSION, "pipeline": self._pipeline, "examples": self.examples}
        import joblib

        joblib.dump(state, buffer, compress=3)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> TriageModel:
        """Load a model written by `to_bytes`."""
        try:
            import joblib

            state = joblib.load(io.BytesIO(data))
        except Exception as exc:  # joblib raises many kinds on corrupt input
            raise InvalidInput(f"not a saved triage model: {exc}") from exc
        if not isinstance(state, dict) or state.get("version") != _FORMAT_VERSION:
            raise InvalidInput("not a saved triage model of a known version")
        return cls(state["pipeline"], state["examples"])


# ---- priority ------------------------------------------------------------------------------------

_OUTAGE = re.compile(
    r"outage|production (?:is )?down|service (?:is )?down|\bdown\b|all (?:our )?(?:users|customers|calls)|everyone|"
    r"nobody can|no one can|urgent|emergency|asap|critical|sev ?1|"
    r"线上|紧急|故障|大面积|全部用户|所有用户|所有通话|全部失败|都失败|停服|宕机|挂了|崩了|十万火急",
    re.I,
)
_WIDE_IMPACT = re.compile(
    r"many users|lots of users|most users|customers complain|crash|cannot (?:join|connect)|can't (?:join|connect)|"
    r"fails? for|every call|大量用户|很多用户|多个用户|用户投诉|崩溃|闪退|进不了|连不上|无法",
    re.I,
)
_QUESTION = re.compile(
    r"^(?:how|what|which|where|does|do|is|are|can)\b|how (?:do|to|can)|invoice|feature request|documentation|docs\b|"
    r"如何|怎么|怎样|是否支持|能不能|有没有|发票|文档|建议|咨询",
    re.I,
)


def suggest_priority(text: str, plan: str, open_incident: bool) -> str:
    """P1 (outage) .. P4 (question) from the ticket's words, the customer's plan and a linked open incident."""
    if len(text) > MAX_SUBJECT_CHARS + MAX_BODY_CHARS + 1:
        raise InvalidInput("ticket text is too long to prioritize")
    if _OUTAGE.search(text):
        level = 1
    elif _WIDE_IMPACT.search(text):
        level = 2
    elif _QUESTION.search(text.strip()):
        level = 4
    else:
        level = 3
    if open_incident:
        # The ticket is a symptom of a known, running incident: at least P2; P1 for the top plan.
        level = min(level, 1 if plan.lower() == "enterprise" else 2)
    if plan.lower() in ("free", "developer", "trial") and level == 1:
        level = 2  # free tiers carry no P1 response target
    return PRIORITIES[level - 1]
