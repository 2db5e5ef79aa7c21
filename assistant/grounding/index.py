"""The index: one chromadb collection per adapter version, holding the training pairs of the Q&A
file stored beside the adapter (held-out rows are never indexed: they measure generalisation).

It is derived data: missing or corrupt, it is rebuilt from the adapters' stored datasets. It only
stores and searches; thresholds, routing and grounding decisions are in grounding.plan.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.grounding.embedder import EMBEDDER_ID, Embedder, shared_embedder
from assistant.grounding.errors import KnowledgeError
from assistant.grounding.owner_lock import OwnerLock

GROUND_TOP_K = 3  # at most this many pairs go into a prompt
INDEX_DIR, LOCK_FILE = "knowledge", "knowledge.lock"
SCHEMA = 3  # 2: each pair held under its question and its answer; 3: with its keywords. Older ones are rebuilt
_ADD_BATCH = 1000


@dataclass
class Pair:
    question: str
    answer: str
    row: int = 0
    keywords: tuple[str, ...] = ()  # the key facts a correct answer contains, when the trainer gave them


@dataclass
class Match:
    """One indexed pair near a question."""

    adapter: str
    version: int
    question: str
    answer: str
    similarity: float
    via: str = "question"  # what of the pair was nearest: its "question" or its "answer"
    keywords: tuple[str, ...] = ()  # the pair's key facts, when its trainer gave them


# --- what an adapter's index holds --------------------------------------------------------------

def adapter_pairs(adapter) -> tuple[list[Pair], str | None]:
    """(training pairs of the Q&A file stored beside an adapter, its sha256); ([], None) without one."""
    path = dataset_path(adapter)
    return pairs_in_file(path) if path is not None else ([], None)


def dataset_path(adapter) -> Path | None:
    """The Q&A file stored beside an adapter, if it has one."""
    stored = (adapter.manifest.get("dataset") or {}).get("stored_as")
    return adapter.path / stored if stored and (adapter.path / stored).is_file() else None


def pairs_in_file(path: Path) -> tuple[list[Pair], str | None]:
    from assistant.data import DataError, load_qa_file

    try:
        report = load_qa_file(path)
    except (DataError, OSError):
        return [], None
    return [Pair(r.question, r.answer, r.row, tuple(r.keywords or ())) for r in report.train], report.sha256


def collection_name(name: str, version: int) -> str:
    # chromadb names: 3-512 of [a-zA-Z0-9._-], starting and ending alphanumeric; adapter names fit.
    return f"a-{name}-v{version}"


# --- the index ----------------------------------------------------------------------------------

class Knowledge:
    """The chromadb index: one collection per adapter version, queried by similarity."""

    def __init__(self, path: Path, embedder: Embedder | None = None, lock: OwnerLock | None = None,
                 temporary: bool = False):
        self.path = Path(path)
        self.embedder = embedder or shared_embedder()
        self._owner = lock
        self._temporary = temporary
        self._lock = threading.RLock()
        self._client = None
        self._indexed: dict[str, dict] = {}  # collection name -> its metadata
        self._collections: dict[str, object] = {}  # collection name -> its handle (a lookup costs a query)
        self._building: set[str] = set()  # collections a sync is embedding now (outside the lock)
        self.rebuilt_reason: str | None = None  # why the index was wiped when opened, if it was
        self._open()

    @classmethod
    def open(cls, data_dir: Path, embedder: Embedder | None = None) -> Knowledge:
        """The owning process's index in <data_dir>/knowledge; raises KnowledgeBusy if owned already."""
        data_dir = Path(data_dir)
        lock = OwnerLock(data_dir / LOCK_FILE).acquire()
        try:
            return cls(data_dir / INDEX_DIR, embedder, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    def temporary(cls, embedder: Embedder | None = None) -> Knowledge:
        """A private index in a temporary directory, removed on close (a CLI run, a benchmark)."""
        return cls(Path(tempfile.mkdtemp(prefix="knowledge-")), embedder, temporary=True)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
            if self._temporary:
                shutil.rmtree(self.path, ignore_errors=True)
            if self._owner is not None:
                self._owner.release()
                self._owner = None

    def __enter__(self) -> Knowledge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # opening and repair ---------------------------------------------------------------------
    def _connect(self):
        import chromadb
        from chromadb.config import Settings

        self.path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(self.path), settings=Settings(anonymized_telemetry=False))

    def _open(self) -> None:
        try:
            self._client = self._connect()
            self._indexed = self._check()
        except Exception as exc:  # chromadb raises many types for a damaged store; all mean "rebuild"
            self.rebuilt_reason = f"the index was unreadable ({type(exc).__name__}: {str(exc)[:120]}); rebuilt"
            self._wipe()
            self._client = self._connect()
            self._indexed = {}
            self._collections = {}

    def _check(self) -> dict[str, dict]:
        """Every collection readable, complete and queryable; returns name -> metadata."""
        found = {}
        for collection in self._client.list_collections():
            meta = dict(collection.metadata or {})
            if meta.get("embedder") != EMBEDDER_ID or meta.get("schema") != SCHEMA \
                    or collection.count() != meta.get("records"):
                self._client.delete_collection(collection.name)  # half-written, older or another embedder: redo
                continue
            if meta.get("pairs"):
                collection.query(query_embeddings=[[0.0] * 383 + [1.0]], n_results=1, include=[])
            found[collection.name] = meta
        return found

    def _wipe(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
        else:  # a failed open can leave chromadb's per-path system cached; drop it
            from chromadb.api.shared_system_client import SharedSystemClient

            system = SharedSystemClient._identifier_to_system.pop(str(self.path), None)
            SharedSystemClient._identifier_to_refcount.pop(str(self.path), None)
            if system is not None:
                try:
                    system.stop()
                except Exception:
                    pass
        shutil.rmtree(self.path, ignore_errors=True)

    def _recover(self, exc: Exception) -> None:
        """A query failed on a damaged store: wipe it; the next sync rebuilds it."""
        self.rebuilt_reason = f"the index failed ({type(exc).__name__}); rebuilt"
        self._wipe()
        self._client = self._connect()
        self._indexed = {}
        self._collections = {}

    # indexing -------------------------------------------------------------------------------
    def index(self, name: str, version: int, pairs: list[Pair], dataset_sha256: str = "") -> None:
        """(Re)index one adapter version's pairs as its own collection."""
        cname = collection_name(name, version)
        # Each pair is held twice: under its question (grounding, routing, lint) and under its answer
        # (coverage: a farmer's wording is often nearer the answer than the trainer's question).
        embeddings = self.embedder.encode([p.question for p in pairs] + [p.answer for p in pairs]) if pairs else None
        meta = {"adapter": name, "version": int(version), "pairs": len(pairs), "records": 2 * len(pairs),
                "schema": SCHEMA, "dataset_sha256": dataset_sha256, "embedder": EMBEDDER_ID,
                "indexed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with self._lock:
            if cname in self._indexed:
                self._drop(cname)
            collection = self._client.create_collection(cname, metadata=meta, embedding_function=None,
                                                        configuration={"hnsw": {"space": "cosine"}})
            n = len(pairs)
            for start in range(0, n, _ADD_BATCH):
                chunk = pairs[start:start + _ADD_BATCH]
                collection.add(ids=[str(start + i) for i in range(len(chunk))],
                               embeddings=embeddings[start:start + len(chunk)],
                               documents=[p.question for p in chunk],
                               metadatas=[{"answer": p.answer, "row": p.row, "kind": "question",
                                           "keywords": json.dumps(list(p.keywords))} for p in chunk])
                collection.add(ids=[f"a{start + i}" for i in range(len(chunk))],
                               embeddings=embeddings[n + start:n + start + len(chunk)],
                               documents=[p.answer for p in chunk],
                               metadatas=[{"question": p.question, "answer": p.answer, "row": p.row, "kind": "answer",
                                           "keywords": json.dumps(list(p.keywords))} for p in chunk])
            self._indexed[cname] = meta
            self._collections[cname] = collection

    def _drop(self, cname: str) -> None:
        self._client.delete_collection(cname)
        self._indexed.pop(cname, None)
        self._collections.pop(cname, None)

    def sync(self, registry) -> list[str]:
        """Index every serving adapter version missing from the index (or indexed from other data);
        drop collections of versions that no longer exist. Returns the keys indexed now."""
        try:
            return self._sync(registry)
        except KnowledgeError:
            raise
        except Exception as exc:  # a damaged store: start again empty; the next sync fills it
            with self._lock:
                self._recover(exc)
            raise KnowledgeError(f"the knowledge index failed while indexing ({type(exc).__name__}); "
                                 "it was reset and is rebuilt at the next refresh") from exc

    def _sync(self, registry) -> list[str]:
        serving = [a for a in registry.list() if a.usable]
        with self._lock:
            todo = []
            for adapter in serving:
                cname = collection_name(adapter.name, adapter.version)
                sha = (adapter.manifest.get("dataset") or {}).get("sha256", "")
                current = self._indexed.get(cname)
                if (current is None or current.get("dataset_sha256") != sha) and cname not in self._building:
                    todo.append((adapter, cname, sha))
            self._building.update(cname for _, cname, _ in todo)
        done = []
        try:
            # Outside the lock: reading and embedding a big adapter's file takes a while, and every
            # grounded chat syncs first; they search what is indexed meanwhile and skip what is building.
            for adapter, _, sha in todo:
                pairs, file_sha = adapter_pairs(adapter)
                self.index(adapter.name, adapter.version, pairs, file_sha or sha)
                done.append(adapter.key)
        finally:
            with self._lock:
                self._building.difference_update(cname for _, cname, _ in todo)
        with self._lock:
            existing = {collection_name(a.name, a.version) for a in registry.all_versions()}
            for cname in [c for c in self._indexed if c not in existing]:
                self._drop(cname)
        return done

    def indexed(self) -> dict[str, int]:
        """'name@vN' -> pairs held, for every collection."""
        with self._lock:
            return {f"{m['adapter']}@v{m['version']}": int(m["pairs"]) for m in self._indexed.values()}

    # querying -------------------------------------------------------------------------------
    def search(self, question: str, adapters: list[tuple[str, int]] | None = None, k: int = GROUND_TOP_K,
               answers: bool = False) -> list[Match]:
        """The k nearest pairs to a question among the given (name, version)s (all when None), best first."""
        vector = self.embedder.encode([question])
        return self.search_vector(vector, adapters, k, answers)

    def search_vector(self, vector, adapters: list[tuple[str, int]] | None = None, k: int = GROUND_TOP_K,
                      answers: bool = False) -> list[Match]:
        """The k nearest pairs by their questions; with `answers`, by their questions or their answers,
        whichever is nearer (one Match per pair, `via` says which)."""
        with self._lock:
            names = ([collection_name(n, v) for n, v in adapters] if adapters is not None else list(self._indexed))
            names = [n for n in names if self._indexed.get(n, {}).get("pairs")]
            matches: list[Match] = []
            try:
                for cname in names:
                    meta = self._indexed[cname]
                    collection = self._collections.get(cname)
                    if collection is None:
                        collection = self._collections[cname] = self._client.get_collection(cname)
                    found = collection.query(
                        query_embeddings=vector, n_results=min(2 * k if answers else k, int(meta["records"])),
                        where=None if answers else {"kind": "question"},
                        include=["documents", "metadatas", "distances"])
                    for doc, extra, distance in zip(found["documents"][0], found["metadatas"][0],
                                                    found["distances"][0], strict=True):
                        matches.append(Match(meta["adapter"], int(meta["version"]), str(extra.get("question", doc)),
                                             str(extra.get("answer", "")), round(1.0 - float(distance), 4),
                                             str(extra.get("kind", "question")),
                                             tuple(json.loads(extra.get("keywords") or "[]"))))
            except Exception as exc:
                self._recover(exc)
                raise KnowledgeError("the knowledge index was damaged and has been reset; it is rebuilt at the "
                                     "next refresh") from exc
        best: dict[tuple, Match] = {}
        for match in sorted(matches, key=lambda m: -m.similarity):  # a pair found twice counts once, at its best
            best.setdefault((match.adapter, match.version, match.question), match)
        return list(best.values())[:k]
