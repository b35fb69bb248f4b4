"""Triage: ticket domain classification and suggested priority (import submodules directly; sklearn is heavy)."""
