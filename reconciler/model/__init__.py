"""Shared value types: what every layer above the API speaks (imports only `reconciler.api`)."""
