"""The model host: one base, one engine, the adapter registry. The CLI and the UI talk to this.

It holds no per-user state: every call names the adapter it wants, so two chats with different
adapters share one loaded base and never affect each other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from assistant.base import Base, resolve_base
from assistant.engines import Engine, GenerationSettings, create_engine
from assistant.paths import SHIPPED_ADAPTERS, default_data_dir
from assistant.registry import Adapter, Registry

NO_ADAPTER_NAMES = ("", "none", "base")


class Assistant:
    def __init__(self, base: Base, engine: Engine, registry: Registry, knowledge=None):
        self.base = base
        self.engine = engine
        self.registry = registry
        self.knowledge = knowledge  # assistant.knowledge.Knowledge, owned by the app process; None without
        self.knowledge_problem = ""  # why there is no knowledge index, when there is none

    @classmethod
    def open(cls, base_spec: str | None = None, engine: str = "llamacpp", data_dir: Path | None = None,
             cache_dir: Path | None = None, shipped_dir: Path | None = SHIPPED_ADAPTERS, **engine_options) -> Assistant:
        base = resolve_base(base_spec, cache_dir)
        registry = Registry(base.sha256, Path(data_dir or default_data_dir()), shipped_dir)
        registry.sweep_staging()  # leftovers of a crashed build are never listed, and go now
        return cls(base, create_engine(engine, base, **engine_options), registry)

    def adapters(self) -> list[Adapter]:
        return self.registry.list()

    def resolve_adapter(self, name: str | None) -> Adapter | None:
        """None for the bare base; raises UnknownAdapter/AdapterError with a user-facing message."""
        if name is None or name.strip().lower() in NO_ADAPTER_NAMES:
            return None
        return self.registry.get(name.strip())

    def plan(self, messages: list[dict], adapter: str | None, ground: bool = False):
        """Which adapter answers (`auto` is routed) and which indexed Q&A pairs ground the prompt."""
        from assistant.knowledge import plan_answer

        return plan_answer(self.knowledge, self.registry, messages, adapter, ground, self.knowledge_problem)

    def chat(self, messages: list[dict], adapter: str | None,
             settings: GenerationSettings | None = None) -> Iterator[str]:
        """Stream the answer to the last user message, with the named adapter (or none)."""
        from assistant.knowledge import is_auto

        if is_auto(adapter):
            plan = self.plan(messages, adapter)
            messages, adapter = plan.messages, plan.adapter
        chosen = self.resolve_adapter(adapter)
        return self.engine.generate(messages, chosen, settings or GenerationSettings())

    def ask(self, question: str, adapter: str | None = None, settings: GenerationSettings | None = None) -> str:
        return "".join(self.chat([{"role": "user", "content": question}], adapter, settings)).strip()
