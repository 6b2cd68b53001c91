"""pumpguard: a safety rules engine for infusion pumps."""

__version__ = "0.1.0"
