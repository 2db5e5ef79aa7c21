"""The bare base's greedy answers, kept between report cards.

Every report card asks the bare base its questions (the file's training and held-out rows, and the
40 general probes whose answers retention is measured against) and, greedy, gets the same answers
every time for the same base, engine, prompt and settings: on the 270M base on 2 cores the 40 probes
alone take about 40 s of every training. So they are kept in the base's cache directory, one file,
each answer under a key of everything that decides it: the engine and its precision, the versions
of the libraries that compute it, the exact prompt the engine is given, and the generation
settings. A change to any of them asks again; scoring is never cached (a changed rule scores the
kept answers anew).

An unreadable or foreign file is ignored and rewritten; writes are atomic, and two trainings writing
at once merge what they found (a lost entry is only asked again).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from assistant.fsutil import write_json_atomic

VERSION = 1
MAX_ANSWERS = 20_000  # questions of every file trained on this base; beyond it, start again


class BaseAnswers:
    def __init__(self, path: Path | None):
        self.path, self.answers, self.asked = path, _read(path), 0

    @classmethod
    def for_base(cls, base) -> BaseAnswers:
        """The kept answers of this base, beside its other caches (none kept without a sha256)."""
        sha, cache_dir = getattr(base, "sha256", None), getattr(base, "cache_dir", None)
        if not sha or cache_dir is None:
            return cls(None)
        return cls(Path(cache_dir) / "base-answers" / f"{sha[:64]}.json")

    def answerer(self, engine, settings, answer, facts: dict[str, list[str]] | None = None):
        """`answer(question)` (evaluate's greedy answerer of the bare base), kept by key; `facts`:
        what each question's prompt shows as grounding (it is part of the prompt, so of the key)."""
        from assistant.answer import format_for

        identity = [type(engine).__name__, str(getattr(engine, "precision", "")), str(getattr(engine, "device", "")),
                    dataclasses.asdict(settings), _libraries()]

        def kept(question: str) -> str:
            message = {"role": "user", "content": question, "facts": (facts or {}).get(question, [])}
            prompt = format_for(engine, None).render([message])
            key = hashlib.sha256(json.dumps([*identity, prompt], sort_keys=True, default=str).encode()).hexdigest()
            if key not in self.answers:
                self.answers[key] = answer(question)
                self.asked += 1
            return self.answers[key]

        return kept

    def save(self) -> None:
        """Write what was asked anew (merged with what another training wrote meanwhile); a cache
        that cannot be written costs time, never the training."""
        if self.path is None or not self.asked:
            return
        merged = {**_read(self.path), **self.answers}
        if len(merged) > MAX_ANSWERS:
            merged = dict(self.answers)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.path, {"version": VERSION, "answers": merged}, indent=None)
        except OSError:
            pass
        self.asked = 0


def _libraries() -> list[str]:
    """The versions of what computes the answers: an upgrade may change a greedy path."""
    from importlib import metadata

    found = []
    for name in ("llama-cpp-python", "torch", "transformers", "peft"):
        try:
            found.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name}=none")
    return found


def _read(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    answers = data.get("answers") if isinstance(data, dict) and data.get("version") == VERSION else None
    if not isinstance(answers, dict):
        return {}
    return {k: v for k, v in answers.items() if isinstance(k, str) and isinstance(v, str)}
