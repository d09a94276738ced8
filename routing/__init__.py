"""Routing: queues, presence, capacity, strategies and offers (issue #4)."""
