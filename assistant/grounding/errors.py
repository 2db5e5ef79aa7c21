"""What the knowledge index raises; every message is for the user."""

from __future__ import annotations


class KnowledgeError(Exception):
    """The index cannot be used; the message is for the user."""


class KnowledgeBusy(KnowledgeError):
    """Another process owns the index."""
