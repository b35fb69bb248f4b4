"""Triage: ticket domain classification and suggested priority."""

from zhiban.triage.evaluate import evaluate_triage, format_triage, held_out_split
from zhiban.triage.model import DOMAINS, Prediction, TriageExample, TriageModel, suggest_priority

__all__ = [
    "DOMAINS",
    "Prediction",
    "TriageExample",
    "TriageModel",
    "evaluate_triage",
    "format_triage",
    "held_out_split",
    "suggest_priority",
]
