"""How a process gets its knowledge index: the app owns it for life; one CLI command borrows one."""

from __future__ import annotations

import threading

from assistant.grounding.errors import KnowledgeBusy, KnowledgeError
from assistant.grounding.index import Knowledge


def open_for_app(registry) -> tuple[Knowledge | None, str]:
    """(the owned index, synced with the registry, "") or (None, why not) for the app process."""
    import sys

    try:
        knowledge = Knowledge.open(registry.data_dir)
    except KnowledgeError as exc:
        return None, str(exc)
    except Exception as exc:
        return None, f"the knowledge index could not be opened ({type(exc).__name__}: {exc})"
    if knowledge.rebuilt_reason:
        print(f"knowledge: {knowledge.rebuilt_reason}", file=sys.stderr, flush=True)
    try:
        knowledge.sync(registry)
    except KnowledgeError as exc:
        print(f"knowledge: {exc}", file=sys.stderr, flush=True)
    # Load the embedding model now, in the background, so the first grounded question does not wait ~7 s.
    threading.Thread(target=knowledge.embedder.encode, args=(["warm-up"],), daemon=True).start()
    return knowledge, ""


def open_for_cli(registry) -> tuple[Knowledge | None, str]:
    """The index for one command: the data directory's own when no app owns it, else a temporary
    one built from the adapters' stored Q&A (the owner's files are never touched)."""
    import sys

    try:
        knowledge = Knowledge.open(registry.data_dir)
    except KnowledgeBusy as exc:
        print(f"note: {exc}; using a temporary index instead", file=sys.stderr, flush=True)
        knowledge = Knowledge.temporary()
    except Exception as exc:
        return None, f"the knowledge index could not be opened ({type(exc).__name__}: {exc})"
    try:
        knowledge.sync(registry)
    except KnowledgeError as exc:
        knowledge.close()
        return None, str(exc)
    return knowledge, ""
