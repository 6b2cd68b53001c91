"""The pumpguard engine: canonical events in, findings out, in event time."""
