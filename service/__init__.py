"""The live service: pumpguard as pump middleware (``pumpguard serve``).

A room of its own because it is the one part that runs for months: it owns a
journal on disk, a live clock, listeners and delivery, none of which an audit
replay or a drill needs. It uses the engine and the adapters like any client.
"""
