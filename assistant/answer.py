"""One answer: its text as a stream, and what every front end shows about it.

`Answer.start` renders the planned conversation in the answering adapter's prompt format, checks
it fits the context, and starts the engine; iterating the answer yields the text a user reads,
cut at the format's stops (and the caller's), piece by piece. Its metadata (adapter and version,
how it was chosen, the grounding sources, a label, token counts, why it ended) is the same for the
Gradio chat, the CLI and the HTTP API, which only render it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

from assistant.engines import EngineError, GenerationSettings
from assistant.prompts import PromptFormat, StopScanner, get_format


class AnswerRequestError(ValueError):
    """The request itself is wrong; `field` names the part (the API's 400 says which)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class PromptTooLong(EngineError):
    """The conversation and the answer it may grow to do not fit the model's context."""


def format_for(engine, adapter) -> PromptFormat:
    """An adapter answers in the format it was trained in; the bare base in its own."""
    return get_format(adapter.prompt_format) if adapter is not None else engine.prompt_format


class Answer:
    def __init__(self, engine, plan, adapter, settings: GenerationSettings, prompt: str, prompt_ids: list[int],
                 stops: tuple[str, ...]):
        self.engine, self.plan, self.settings = engine, plan, settings
        self.adapter = adapter.name if adapter is not None else None  # None: the bare base answered
        self.version = adapter.version if adapter is not None else None
        self.format = format_for(engine, adapter)
        self.prompt, self.prompt_tokens = prompt, len(prompt_ids)
        self.text = ""
        self.completion_tokens = 0
        self.finish_reason: str | None = None  # "stop" or "length" once the stream has ended
        self._adapter, self._stops, self._prompt_ids = adapter, stops, list(prompt_ids)
        self._pieces: Iterator[str] | None = None

    @classmethod
    def start(cls, engine, plan, adapter, settings: GenerationSettings, stops: tuple[str, ...] = ()) -> Answer:
        fmt = format_for(engine, adapter)
        prompt = fmt.render(plan.messages)
        ids = engine.tokenize(prompt)
        n_ctx = getattr(engine, "n_ctx", None)
        if n_ctx is not None and len(ids) + settings.max_tokens > n_ctx():
            raise PromptTooLong(f"the conversation is too long ({len(ids)} tokens, and up to {settings.max_tokens} "
                                f"for the answer, where the model holds {n_ctx()}); clear the chat and ask again")
        return cls(engine, plan, adapter, settings, prompt, ids, tuple(s for s in stops if s))

    # what the front ends show ---------------------------------------------------------------
    @property
    def chosen_by(self) -> str:
        """"auto" when the service routed the question, "request" when the caller named the adapter."""
        return "auto" if self.plan.route is not None else "request"

    @property
    def route_reason(self) -> str:
        return self.plan.route.reason if self.plan.route is not None else ""

    @property
    def sources(self) -> list:
        """The Q&A pairs put into the prompt (grounding.Match: adapter, version, question, answer, similarity)."""
        return list(self.plan.sources)

    @property
    def grounding_note(self) -> str:
        """Why grounding (or routing) could not be done, when it was asked for and could not."""
        return self.plan.note

    @property
    def label(self) -> str:
        """Plain text under the answer: who answered, how it was chosen, and the grounding."""
        label = f"{self.adapter} v{self.version}" if self.adapter else "base model"
        if self.plan.route is not None:
            label = f"auto → {label} ({self.plan.route.reason})"
        if self.plan.ground:
            if self.plan.sources:
                n = len(self.plan.sources)
                label += f" · grounded in {n} Q&A pair{'s' if n > 1 else ''}"
            else:
                label += f" · not grounded: {self.plan.note or 'nothing close enough'}"
        return label

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    # the text ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        if self._pieces is None:
            self._pieces = self._stream()
        return self._pieces

    def read(self) -> str:
        """The whole answer (what is left of it), stripped."""
        for _ in self:
            pass
        return self.text.strip()

    def close(self) -> None:
        """Stop decoding now (a client gone, a stop pressed): the engine's slot is freed at once."""
        if self._pieces is not None:
            self._pieces.close()

    def _stream(self) -> Iterator[str]:
        fmt, engine = self.format, self.engine
        scanner = StopScanner(fmt.stop_strings + self._stops)
        stop_ids = set(fmt.stop_token_ids)
        ids: list[int] = []
        self.finish_reason = "length"
        # closing(): a stop ends the engine's decode now, not when the garbage collector gets to it
        with closing(iter(engine.generate_ids(self._prompt_ids, self._adapter, self.settings))) as tokens:
            for token in tokens:
                if token in stop_ids:
                    self.finish_reason = "stop"
                    break
                ids.append(token)
                self.completion_tokens = len(ids)
                # The answer's leading space belongs to the prompt format, not to what the user reads.
                piece = scanner.feed(engine.detokenize(ids).lstrip())
                if piece:
                    self.text += piece
                    yield piece
                if scanner.stopped:
                    self.finish_reason = "stop"
                    return
        scanner.stops = ()  # end of stream: release what was held back, minus trailing whitespace
        tail = scanner.feed(engine.detokenize(ids).strip())
        if tail:
            self.text += tail
            yield tail


def stream_text(engine, messages: list[dict], adapter, settings: GenerationSettings) -> Iterator[str]:
    """The answer text to `messages` with `adapter`, no planning (evaluation, verification, tests)."""
    from assistant.grounding.plan import Plan

    return iter(Answer.start(engine, Plan(adapter=adapter.name if adapter else None, messages=messages), adapter,
                             settings))
