"""Drains a terminating node (cordon, evict through the Eviction API) and completes its lifecycle action."""
