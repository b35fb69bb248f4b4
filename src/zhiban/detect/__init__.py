"""Streaming anomaly detection and the NAB benchmark harness."""

from zhiban.detect.core import Detector, DetectorParams

__all__ = ["Detector", "DetectorParams"]
