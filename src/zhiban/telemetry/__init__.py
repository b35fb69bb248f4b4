"""Call-quality telemetry: parse reports, convert browser stats, derive QoE, aggregate per window and slice."""

from zhiban.telemetry.aggregate import Aggregator
from zhiban.telemetry.batch import ReportBatch
from zhiban.telemetry.dedup import Deduplicator
from zhiban.telemetry.model import QualityReport, Rejection
from zhiban.telemetry.parse import BatchResult, parse_batch
from zhiban.telemetry.qoe import METRICS, emodel_mos
from zhiban.telemetry.summary import QualitySummary, summarize
from zhiban.telemetry.webrtc import WebrtcConverter
from zhiban.telemetry.window import SliceKey, WindowAggregate, merge, rollup

__all__ = [
    "METRICS",
    "Aggregator",
    "BatchResult",
    "Deduplicator",
    "QualityReport",
    "QualitySummary",
    "Rejection",
    "ReportBatch",
    "SliceKey",
    "WebrtcConverter",
    "WindowAggregate",
    "emodel_mos",
    "merge",
    "parse_batch",
    "rollup",
    "summarize",
]
