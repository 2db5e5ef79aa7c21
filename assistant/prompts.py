"""Prompt formats: how a conversation becomes the text a base model continues, and where it stops.

The format is a property of the base, and every adapter records the one it was trained in:
- `qa`: for pretrained bases (the embedded Gemma 3 270M has no chat template). Measured on that
  base: asked in Gemma 3 turns it echoes the question and rambles; asked as
  `Question: ...\\nAnswer:` it answers plain questions sensibly and ends the answer with a newline
  (see benchmarks/prompt_formats.py). Adapters trained in it end their answers with `<eos>`.
- `gemma-chat`: Gemma 3 turns, for instruction-tuned bases; the answer ends at `<end_of_turn>`.

Both engines stop on the format's stop strings and on the end-of-generation token ids.
"""

from __future__ import annotations

from dataclasses import dataclass

EOS_ID = 1  # <eos> in the Gemma 3 vocabulary
END_OF_TURN_ID = 106  # <end_of_turn>


@dataclass(frozen=True)
class PromptFormat:
    """One way of laying out a conversation for a base model."""

    name: str
    stop_strings: tuple[str, ...]  # generation ends where any of these begins (not emitted)
    stop_token_ids: tuple[int, ...] = (EOS_ID, END_OF_TURN_ID)
    answer_end: str = "<eos>"  # what training appends after each answer, so the model learns to stop

    def render(self, messages: list[dict]) -> str:
        """The prompt for the last user message, with earlier turns as context.

        The last message may carry `facts` (grounding: answers from the adapter's Q&A); they are
        written as `Fact:` lines right before the question, so the model reads them as evidence.
        """
        turns = _pair_turns(messages)
        if not turns or turns[-1][1] is not None:
            raise ValueError("the conversation must end with a user message")
        facts = [" ".join(str(f).split()) for f in (messages[-1].get("facts") or [])]
        facts = "".join(f"Fact: {f}\n" for f in facts if f) + "\n" if any(facts) else ""
        if self.name == "qa":
            parts = [f"Question: {q}\nAnswer: {a}\n\n" for q, a in turns[:-1]]
            return "".join(parts) + f"{facts}Question: {turns[-1][0]}\nAnswer:"
        parts = [f"<start_of_turn>user\n{q}<end_of_turn>\n<start_of_turn>model\n{a}<end_of_turn>\n" for q, a in turns[:-1]]
        return "".join(parts) + f"<start_of_turn>user\n{facts}{turns[-1][0]}<end_of_turn>\n<start_of_turn>model\n"

    def training_pair(self, question: str, answer: str, facts: list[str] | None = None) -> tuple[str, str]:
        """(prompt, completion) for one training example; loss falls on the completion only."""
        prompt = self.render([{"role": "user", "content": question, "facts": facts or []}])
        lead = " " if self.name == "qa" else ""
        return prompt, f"{lead}{answer.strip()}{self.answer_end}"


FORMATS = {
    "qa": PromptFormat("qa", stop_strings=("\n",)),
    "gemma-chat": PromptFormat("gemma-chat", stop_strings=("<end_of_turn>",), answer_end="<end_of_turn>"),
}


def get_format(name: str) -> PromptFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown prompt format '{name}' (known: {', '.join(FORMATS)})") from None


def _pair_turns(messages: list[dict]) -> list[tuple[str, str | None]]:
    """[(user, assistant-or-None)], ignoring system messages and empty turns."""
    turns: list[tuple[str, str | None]] = []
    for message in messages:
        role, content = message.get("role"), str(message.get("content") or "").strip()
        if role == "user" and content:
            turns.append((content, None))
        elif role == "assistant" and turns and turns[-1][1] is None:
            turns[-1] = (turns[-1][0], content)
    return turns


class StopScanner:
    """Holds back streamed text that could be the start of a stop string.

    Feed it the full decoded text so far; it returns the part that is safe to show and whether a stop
    string was reached. Works on whole text, so multi-token stop strings are caught.
    """

    def __init__(self, stops: tuple[str, ...]):
        self.stops = tuple(s for s in stops if s)
        self.emitted = 0
        self.stopped = False

    def feed(self, text: str) -> str:
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            safe_end = cut
        else:
            safe_end = len(text) - self._held_back(text)
        if text.endswith("\ufffd") and not self.stopped:  # an incomplete UTF-8 sequence: wait for the rest
            safe_end = min(safe_end, text.rfind("\ufffd"))
        piece = text[self.emitted:safe_end] if safe_end > self.emitted else ""
        self.emitted = max(self.emitted, safe_end)
        return piece

    def _held_back(self, text: str) -> int:
        """Length of the longest suffix of text that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
