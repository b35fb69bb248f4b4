"""Incidents: alerts, deduplication, escalation policies, acknowledgement, status pages."""
