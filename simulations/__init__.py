"""Drills: scenarios that generate event streams with injected errors, and their scoring."""
