"""Chat tab handlers: plain functions over an `Assistant`, testable without a browser.

The adapter choice is a component value, so it belongs to the browser session, never the server.
The conversation the model sees is kept apart from what the chatbot shows (which carries a label
naming the adapter behind each answer), so labels never leak into the next prompt.
"""

from __future__ import annotations

from collections.abc import Iterator

from assistant.engines import EngineError, GenerationSettings
from assistant.registry import AdapterError

NONE_VALUE = "none"
NONE_LABEL = "No adapter (base model)"


def adapter_choices(assistant) -> list[tuple[str, str]]:
    choices = [(NONE_LABEL, NONE_VALUE)]
    for adapter in assistant.adapters():
        if adapter.usable:
            choices.append((f"{adapter.name} (v{adapter.version})", adapter.name))
    return choices


def adapter_card(assistant, name: str | None) -> str:
    """A short card: what the adapter was trained on and its report-card scores."""
    if not name or name == NONE_VALUE:
        return f"**Base model only** — {assistant.base.name}. Answers from what the base already knows."
    try:
        adapter = assistant.registry.get(name)
    except AdapterError as exc:
        return f"⚠️ {exc}"
    m = adapter.manifest
    lines = [f"**{adapter.name}** v{adapter.version} · {adapter.source}"]
    if m.get("description"):
        lines.append(m["description"])
    dataset = m.get("dataset") or {}
    if dataset:
        lines.append(f"Trained on `{dataset.get('source', '?')}`: {dataset.get('train_pairs', '?')} Q&A pairs"
                     f" ({dataset.get('test_pairs', 0)} held out).")
    card = (m.get("report_card") or {}).get("after") or {}
    scores = [f"{label} **{card[key]:.0%}**" for key, label in
              (("recall", "recall"), ("heldout_recall", "held-out recall"), ("retention", "retention")) if key in card]
    if scores:
        lines.append("Report card: " + " · ".join(scores))
    return "\n\n".join(lines)


def unusable_note(assistant) -> str:
    broken = [a for a in assistant.adapters() if not a.usable]
    if not broken:
        return ""
    return "Unavailable adapters: " + "; ".join(f"**{a.name}** ({a.problem})" for a in broken)


def label_for(assistant, name: str | None) -> str:
    if not name or name == NONE_VALUE:
        return "base model"
    try:
        adapter = assistant.registry.get(name)
        return f"{adapter.name} v{adapter.version}"
    except AdapterError:
        return name


def respond(assistant, message: str, display: list, conversation: list, adapter: str | None,
            max_tokens: float, temperature: float) -> Iterator[tuple[list, list, str]]:
    """Stream one answer. Yields (chatbot messages, model conversation, textbox value)."""
    question = (message or "").strip()
    if not question:  # an empty question does nothing
        yield display, conversation, message or ""
        return
    conversation = [*conversation, {"role": "user", "content": question}]
    label = label_for(assistant, adapter)
    display = [*display, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
    answer = ""
    try:
        settings = GenerationSettings(max_tokens=int(max_tokens), temperature=float(temperature))
        for piece in assistant.chat(conversation, adapter, settings):
            answer += piece
            display[-1] = {"role": "assistant", "content": _labelled(answer + " ▌", label)}
            yield display, conversation, ""
    except (AdapterError, EngineError, ValueError) as exc:
        display[-1] = {"role": "assistant", "content": f"⚠️ {exc}"}
        yield display, conversation[:-1], question  # keep the question so nothing typed is lost
        return
    display[-1] = {"role": "assistant", "content": _labelled(answer or "(no answer)", label)}
    yield display, [*conversation, {"role": "assistant", "content": answer}], ""


def _labelled(text: str, label: str) -> str:
    return f"{text}\n\n<sub>— {label}</sub>"


def clear() -> tuple[list, list, str]:
    return [], [], ""
