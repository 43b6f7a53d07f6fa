"""Shared value types: what every layer above speaks in; imports only `reconciler.api`."""
