"""The answer service: the one owner of a question's way from any front end to the engine and back.

    assistant = Assistant.open(base_spec, engine="llamacpp", data_dir=...)
    assistant.open_knowledge(owner=True)        # the app: this process owns the Q&A index
    answer = assistant.answer(messages, "auto", settings, ground=True)
    for piece in answer: ...                    # the text, streamed
    answer.adapter, answer.version, answer.label, answer.sources, answer.usage()

It opens the base, the engine, the registry and the knowledge index, and does everything between a
question and its text: choose the adapter (`auto` routes), retrieve grounding pairs, render the
prompt in the adapter's format, generate, stop, and label. The Gradio chat, the CLI and the HTTP API
all call `answer` and render the same `Answer`, so every front end gives the same answer with the
same label and sources. It holds no per-user state: every call names its adapter.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from assistant.answer import Answer, AnswerRequestError
from assistant.base import Base, resolve_base
from assistant.engines import Engine, GenerationSettings, create_engine
from assistant.paths import SHIPPED_ADAPTERS, default_data_dir
from assistant.registry import Adapter, Registry
from assistant.store import Store
from assistant.trust import cover, is_follow_up, policy_of, retrieval_question

NO_ADAPTER_NAMES = ("", "none", "base")

__all__ = ["Answer", "AnswerRequestError", "Assistant", "NO_ADAPTER_NAMES"]


class Assistant:
    def __init__(self, base: Base, engine: Engine, registry: Registry, knowledge=None, store: Store | None = None):
        self.base = base
        self.engine = engine
        self.registry = registry
        self.store = store  # where questions without a checked answer are recorded for the trainers
        self.knowledge = knowledge  # grounding.Knowledge; None until open_knowledge (or without one)
        self.knowledge_problem = ""  # why there is no knowledge index, when there is none
        self._knowledge_lock = threading.Lock()

    @classmethod
    def open(cls, base_spec: str | None = None, engine: str = "llamacpp", data_dir: Path | None = None,
             cache_dir: Path | None = None, shipped_dir: Path | None = SHIPPED_ADAPTERS, **engine_options) -> Assistant:
        base = resolve_base(base_spec, cache_dir)
        registry = Registry(base.sha256, Path(data_dir or default_data_dir()), shipped_dir)
        registry.sweep_staging()  # leftovers of a crashed build are never listed, and go now
        store = Store.open(registry.data_dir)
        # A server engine learns the adapters at start (llama-server loads LoRAs only then): every usable
        # version, so a promotion or a rollback serves one it already has.
        adapters = [a for a in registry.all_versions() if a.usable] if engine in ("llama-server", "server") else ()
        return cls(base, create_engine(engine, base, adapters, **engine_options), registry, store=store)

    # the knowledge index ------------------------------------------------------------------------
    def open_knowledge(self, owner: bool) -> None:
        """Open the Q&A index. `owner`: the app, which holds it for its whole life (a second app
        runs without, saying why); otherwise one command's use (a temporary copy when an app owns it)."""
        from assistant.grounding.opening import open_for_app, open_for_cli

        with self._knowledge_lock:
            if self.knowledge is not None:
                return
            self.knowledge, self.knowledge_problem = (open_for_app if owner else open_for_cli)(self.registry)
        if self.knowledge_problem:
            print(f"grounding and automatic adapter are off: {self.knowledge_problem}", file=sys.stderr, flush=True)

    def sync_knowledge(self) -> None:
        """Index any version published since the last look (the app calls this on every refresh)."""
        from assistant.grounding.index import KnowledgeError

        if self.knowledge is not None:
            try:
                self.knowledge.sync(self.registry)
            except KnowledgeError:
                pass  # the next refresh or question tries again; answers then say why grounding is missing

    def indexed(self) -> dict[str, int] | None:
        """Pairs indexed per adapter version, or None without an index (see knowledge_problem)."""
        return self.knowledge.indexed() if self.knowledge is not None else None

    # adapters -----------------------------------------------------------------------------------
    def adapters(self) -> list[Adapter]:
        return self.registry.list()

    def resolve_adapter(self, name: str | None) -> Adapter | None:
        """None for the bare base; raises UnknownAdapter/AdapterError with a user-facing message."""
        if name is None or name.strip().lower() in NO_ADAPTER_NAMES:
            return None
        return self.registry.get(name.strip())

    # answering ----------------------------------------------------------------------------------
    def plan(self, messages: list[dict], adapter: str | None, ground: bool = False):
        """Which adapter answers (`auto` is routed) and which indexed Q&A pairs ground the prompt."""
        from assistant.grounding.plan import plan_answer

        return plan_answer(self.knowledge, self.registry, messages, adapter, ground, self.knowledge_problem)

    def answer(self, messages: list[dict], adapter: str | None, settings: GenerationSettings | None = None,
               ground: bool = False, stop: tuple[str, ...] = (), user: str | None = None) -> Answer:
        """The answer to the conversation's last user message, ready to stream; checked against the
        answering adapter's own Q&A, withheld, or marked not checked (see assistant.trust).

        Everything that can be refused is refused here, before any token is decoded: a conversation
        that does not end with a question (AnswerRequestError), an unknown or broken adapter
        (UnknownAdapter / AdapterError), a prompt longer than the context (PromptTooLong).
        """
        from assistant.grounding.plan import with_facts

        messages = _checked_messages(messages)
        plan = self.plan(messages, adapter, bool(ground))
        chosen = self.resolve_adapter(plan.adapter)
        settings = settings or GenerationSettings()
        policy, question = policy_of(chosen), retrieval_question(messages)
        follow_up = messages[-1]["content"] if is_follow_up(messages) else None
        if chosen is not None and self.knowledge is not None and chosen.key not in (self.indexed() or {}):
            self.sync_knowledge()  # a version that began to serve since the last refresh (promoted, rolled back)
        coverage = cover(self.knowledge, chosen, question, follow_up,
                         vector=plan.vector if plan.question == question else None)
        if coverage.pair is None and policy == "checked":
            answer = Answer.withhold(self.engine, plan, chosen, settings, coverage, question, is_follow_up(messages))
            self._record_open_question(answer, user)
            return answer
        if coverage.pair is not None and (ground or policy == "checked"):
            # The covering pair in the prompt, alone: the model then says what the pair says far more
            # often, and the answer is checked against that pair; more pairs would only lengthen the
            # prompt (~30 tokens each, evaluated before the first token) and offer others to mix in.
            plan.messages, plan.sources, plan.note = with_facts(plan.messages, [coverage.pair]), [coverage.pair], ""
        return Answer.start(self.engine, plan, chosen, settings, tuple(stop), policy, coverage, question)

    def _record_open_question(self, answer: Answer, user: str | None) -> None:
        if self.store is None:
            return
        nearest = [{"question": m.question, "similarity": m.similarity} for m in answer.coverage.nearest]
        try:
            from assistant import questions

            questions.record_open_question(self.store, answer.question, answer.adapter, answer.version,
                                           answer.coverage.note or "no checked answer", nearest, user)
        except Exception as exc:  # a full disk must not cost the farmer the answer; the log says it
            print(f"could not record the open question: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def ask(self, question: str, adapter: str | None = None, settings: GenerationSettings | None = None,
            ground: bool = False) -> str:
        """One question, the whole answer as text (scripts and tests)."""
        return self.answer([{"role": "user", "content": question}], adapter, settings, ground).read()

    def close(self) -> None:
        """Stop every decode and free the index lock (the app at exit)."""
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()
        if self.knowledge is not None:
            self.knowledge.close()


def _checked_messages(messages) -> list[dict]:
    """Plain {role, content} dicts, the last one a non-empty user question."""
    if not isinstance(messages, list) or not messages:
        raise AnswerRequestError("messages", "the conversation is empty; send at least one user message")
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise AnswerRequestError(f"messages[{i}]", "each message must be an object with a role and a content")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise AnswerRequestError(f"messages[{i}].role", f"unknown role {str(role)[:40]!r} "
                                     "(use system, user or assistant)")
        if not isinstance(content, str):
            raise AnswerRequestError(f"messages[{i}].content", "the content must be text")
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user" or not out[-1]["content"].strip():
        raise AnswerRequestError("messages", "the conversation must end with a non-empty user message")
    return out
