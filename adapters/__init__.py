"""Adapters: what hospitals send, turned into canonical events; findings delivered."""
