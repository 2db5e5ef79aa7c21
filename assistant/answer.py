"""One answer: its text as a stream, and what every front end shows about it.

`Answer.start` renders the planned conversation in the answering adapter's prompt format, checks
it fits the context, and starts the engine; iterating the answer yields the text a user reads.
Its metadata (adapter and version, how it was chosen, checked or not, the pair it was checked
against, suggestions, a label, token counts, why it ended) is the same for the Gradio chat, the
CLI and the HTTP API, which only render it.

An answer goes one of three ways (assistant.trust decides which, before decoding):
- **checked**: a pair of the adapter's Q&A covers the question; the answer is decoded in full,
  compared with the pair, and yielded once: the model's words when they agree with the pair,
  else the pair's own answer;
- **withheld**: the policy is *checked only* and nothing covers the question; no decoding, the
  text says so, and `suggestions` holds the closest checked questions;
- **not checked**: the policy is *open* and nothing covers the question; the model's text
  streams as it is decoded.
Decoding stops at the format's stops, the caller's stops, the token limit, or a loop (the last
LOOP_WORDS words already said once: a 270M model can repeat one sentence to the token limit).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

from assistant.checking import supports
from assistant.engines import EngineError, GenerationSettings
from assistant.prompts import PromptFormat, StopScanner, get_format
from assistant.trust import Coverage, no_checked_answer_text

LOOP_WORDS = 6  # a run of this many words said twice ends the answer before the repeat


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
                 stops: tuple[str, ...] = (), policy: str = "open", coverage: Coverage | None = None,
                 question: str = "", withheld: bool = False, follow_up: bool = False):
        self.engine, self.plan, self.settings = engine, plan, settings
        self.adapter = adapter.name if adapter is not None else None  # None: the bare base answered
        self.version = adapter.version if adapter is not None else None
        self.format = format_for(engine, adapter)
        self.prompt, self.prompt_tokens = prompt, len(prompt_ids)
        self.policy = policy  # "checked" (checked only) or "open"
        self.coverage = coverage or Coverage()
        self.question = question  # what was looked up (a follow-up joined to the question before)
        self.withheld = withheld  # checked only, nothing covers it: no model text at all
        self.checked = False  # set once the text agrees with (or is) the covering pair's answer
        self.replaced = False  # the model drifted from the pair: the pair's own answer is shown instead
        self.check_reason = ""
        self.text = no_checked_answer_text(follow_up, bool(self.coverage.suggestions)) if withheld else ""
        self.completion_tokens = 0
        self.finish_reason: str | None = "stop" if withheld else None  # "stop" or "length" once ended
        self._adapter, self._stops, self._prompt_ids = adapter, stops, list(prompt_ids)
        self._pieces: Iterator[str] | None = None
        self._tokens = None  # the engine's token stream, once decoding has started
        self._cancelled = threading.Event()

    @classmethod
    def start(cls, engine, plan, adapter, settings: GenerationSettings, stops: tuple[str, ...] = (),
              policy: str = "open", coverage: Coverage | None = None, question: str = "") -> Answer:
        fmt = format_for(engine, adapter)
        prompt = fmt.render(plan.messages)
        ids = engine.tokenize(prompt)
        n_ctx = getattr(engine, "n_ctx", None)
        if n_ctx is not None and len(ids) + settings.max_tokens > n_ctx():
            raise PromptTooLong(f"the conversation is too long ({len(ids)} tokens, and up to {settings.max_tokens} "
                                f"for the answer, where the model holds {n_ctx()}); clear the chat and ask again")
        return cls(engine, plan, adapter, settings, prompt, ids, tuple(s for s in stops if s), policy, coverage,
                   question)

    @classmethod
    def withhold(cls, engine, plan, adapter, settings: GenerationSettings, coverage: Coverage, question: str,
                 follow_up: bool) -> Answer:
        return cls(engine, plan, adapter, settings, "", [], (), "checked", coverage, question, withheld=True,
                   follow_up=follow_up)

    # what the front ends show ---------------------------------------------------------------
    @property
    def chosen_by(self) -> str:
        """"auto" when the service routed the question, "request" when the caller named the adapter."""
        return "auto" if self.plan.route is not None else "request"

    @property
    def route_reason(self) -> str:
        return self.plan.route.reason if self.plan.route is not None else ""

    @property
    def checked_against(self):
        """The pair the answer was checked against (grounding.Match), when it is checked."""
        return self.coverage.pair if self.checked else None

    @property
    def sources(self) -> list:
        """The Q&A pairs behind the answer (grounding.Match: adapter, version, question, answer, similarity):
        the pair it was checked against first, then the grounding pairs put into the prompt."""
        pairs = [self.coverage.pair] if self.checked else []
        return pairs + [m for m in self.plan.sources if m not in pairs]

    @property
    def suggestions(self) -> list[str]:
        """Closest checked questions ("Did you mean ...?"), when the answer is not checked."""
        return [] if self.checked else self.coverage.suggestions

    @property
    def grounding_note(self) -> str:
        """Why grounding (or routing) could not be done, when it was asked for and could not."""
        return self.plan.note

    @property
    def trust_mark(self) -> str:
        if self.withheld:
            return "no checked answer"
        if self.checked:
            return "✓ checked against the Q&A" + (" (in the Q&A's words)" if self.replaced else "")
        return "not checked — may be wrong"

    @property
    def label(self) -> str:
        """Plain text under the answer: who answered, how it was chosen, checked or not, and the grounding."""
        label = f"{self.adapter} v{self.version}" if self.adapter else "base model"
        if self.plan.route is not None:
            label = f"auto → {label} ({self.plan.route.reason})"
        if self.plan.ground and not self.withheld:  # nothing was answered, grounded or not
            if self.plan.sources:
                n = len(self.plan.sources)
                label += f" · grounded in {n} Q&A pair{'s' if n > 1 else ''}"
            else:
                label += f" · not grounded: {self.plan.note or 'nothing close enough'}"
        return f"{label} · {self.trust_mark}" if self.finish_reason is not None else label

    def usage(self) -> dict:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    def describe(self) -> dict:
        """The answer as plain data (CLI --json, API extras, the trust benchmark)."""
        return {"answer": self.text.strip(), "adapter": self.adapter, "version": self.version,
                "policy": self.policy, "checked": self.checked, "withheld": self.withheld,
                "replaced_by_source": self.replaced, "label": self.label, "chosen_by": self.chosen_by,
                "route_reason": self.route_reason, "suggestions": self.suggestions,
                "sources": [{"question": m.question, "answer": m.answer, "adapter": m.adapter, "version": m.version,
                             "similarity": m.similarity} for m in self.sources],
                "finish_reason": self.finish_reason}

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
        """Stop decoding now (a client gone, a stop pressed): the engine's slot is freed at once.
        Call it from the thread that iterates the answer; from any other, call cancel()."""
        if self._pieces is not None:
            self._pieces.close()

    def cancel(self) -> None:
        """Stop decoding from any thread (the API's event loop when its client leaves): a request still
        waiting for a slot leaves the line at once; the iterating thread then sees the answer end,
        with nothing checked and nothing more yielded."""
        self._cancelled.set()
        tokens = self._tokens
        if tokens is not None and hasattr(tokens, "cancel"):
            tokens.cancel()

    def _stream(self) -> Iterator[str]:
        if self.withheld:
            yield self.text
            return
        if self.coverage.pair is None:  # not checked: the farmer sees it as it comes, under its mark
            yield from self._decode()
            return
        for _ in self._decode():  # checked: nothing is shown before it is compared with the pair
            pass
        if self._cancelled.is_set():
            return
        pair = self.coverage.pair
        # What the farmer asked last is what is given: in "How deep for wheat? And potatoes?" an
        # answer about wheat, checked against the potato pair, must not pass for being "asked".
        asked = next((str(m.get("content") or "") for m in reversed(self.plan.messages) if m.get("role") == "user"), "")
        verdict = supports(self.text, pair.answer, asked, pair.question, pair.keywords)
        self.checked, self.check_reason = True, verdict.reason
        if not verdict.supported:
            self.text, self.replaced = pair.answer.strip(), True
        yield self.text

    def _decode(self) -> Iterator[str]:
        fmt, engine = self.format, self.engine
        scanner = StopScanner(fmt.stop_strings + self._stops)
        stop_ids = set(fmt.stop_token_ids)
        ids: list[int] = []
        self.finish_reason = "length"
        # closing(): a stop ends the engine's decode now, not when the garbage collector gets to it
        if self._cancelled.is_set():
            return
        # A checked answer mostly restates its pair: the engine may verify the pair's words several
        # tokens at a time (assistant.engines.drafting) instead of decoding them one by one.
        draft = {"draft": self.coverage.pair.answer} if self.coverage.pair is not None and getattr(
            engine, "accepts_draft", False) else {}
        self._tokens = iter(engine.generate_ids(self._prompt_ids, self._adapter, self.settings, **draft))
        if self._cancelled.is_set():  # cancelled while the stream was being made: it must not wait for a slot
            self.cancel()
        with closing(self._tokens) as tokens:
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
                if _loops(self.text):
                    self.text, self.finish_reason = _before_loop(self.text), "stop"
                    return
        scanner.stops = ()  # end of stream: release what was held back, minus trailing whitespace
        tail = scanner.feed(engine.detokenize(ids).strip())
        if tail:
            self.text += tail
            yield tail


def _loops(text: str) -> bool:
    words = text.split()
    if len(words) < 2 * LOOP_WORDS:
        return False
    tail = words[-LOOP_WORDS:]
    return any(words[i:i + LOOP_WORDS] == tail for i in range(len(words) - 2 * LOOP_WORDS + 1))


def _before_loop(text: str) -> str:
    """The text with its repetition cut: a run repeated back to back is kept once; otherwise the
    last LOOP_WORDS words (which repeat something said before) go."""
    words = text.split()
    for period in range(1, len(words) // 2 + 1):
        if words[-period:] == words[-2 * period:-period]:
            while len(words) >= 2 * period and words[-period:] == words[-2 * period:-period]:
                words = words[:-period]
            return " ".join(words)
    return " ".join(words[:-LOOP_WORDS])


def stream_text(engine, messages: list[dict], adapter, settings: GenerationSettings) -> Iterator[str]:
    """The answer text to `messages` with `adapter`, no planning or checking (evaluation,
    verification, benchmarks' plain baseline, tests)."""
    from assistant.grounding.plan import Plan

    return iter(Answer.start(engine, Plan(adapter=adapter.name if adapter else None, messages=messages), adapter,
                             settings))
