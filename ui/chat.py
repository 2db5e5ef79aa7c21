"""Chat tab handlers: plain functions over an `Assistant`, testable without a browser.

The adapter choice is a component value, so it belongs to the browser session, never the server.
The conversation the model sees is kept apart from what the chatbot shows (which carries a label
naming the adapter behind each answer), so labels never leak into the next prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

from assistant.engines import EngineError, GenerationSettings
from assistant.registry import AdapterError

NONE_VALUE = "none"
NONE_LABEL = "No adapter (base model)"
AUTO_VALUE = "auto"
AUTO_LABEL = "Automatic (nearest adapter's Q&A)"
SUGGESTION_BUTTONS = 3


def adapter_choices(assistant) -> list[tuple[str, str]]:
    choices = [(NONE_LABEL, NONE_VALUE), (AUTO_LABEL, AUTO_VALUE)]
    for adapter in assistant.adapters():
        if adapter.usable:
            choices.append((f"{adapter.name} (v{adapter.version})", adapter.name))
    return choices


def adapter_card(assistant, name: str | None) -> str:
    """A short card: what the adapter was trained on and its report-card scores."""
    if not name or name == NONE_VALUE:
        return f"**Base model only** — {assistant.base.name}. Answers from what the base already knows."
    if name == AUTO_VALUE:
        return knowledge_card(assistant)
    try:
        adapter = assistant.registry.get(name)
    except AdapterError as exc:
        return f"⚠️ {_safe(exc)}"

    import re

    def text(value) -> str:
        """Typed by a trainer, read by every farmer: shown as text, never as markdown, HTML or a link.
        Every ASCII punctuation mark is backslash-escaped (CommonMark shows it as itself), which
        also stops bare-URL and e-mail autolinks (`https\\://`, `www\\.`, `a\\@b`)."""
        return re.sub(r"([!-/:-@\[-`{-~])", r"\\\1", " ".join(str(value)[:300].split()))

    m = adapter.manifest
    lines = [f"**{_safe(adapter.name)}** v{adapter.version} · {_safe(adapter.source)}"]
    if m.get("description"):
        lines.append(text(m["description"]))
    dataset = m.get("dataset") or {}
    if dataset:
        lines.append(f"Trained on “{text(dataset.get('source', '?'))}”: {_safe(dataset.get('train_pairs', '?'))} "
                     f"Q&A pairs ({_safe(dataset.get('test_pairs', 0))} held out).")
    from assistant.trust import POLICY_HELP

    lines.append(POLICY_HELP[adapter.answer_policy])
    card = (m.get("report_card") or {}).get("after") or {}
    rows = [("recall", "recall"), ("heldout_recall", "held-out recall"), ("retention", "retention")]
    if adapter.answer_policy == "checked":
        # A checked-only adapter answers only with the covering pair in its prompt, so the score a farmer meets
        # is the one with that pair shown; the others are the adapter alone (as exported, or if made open).
        rows = [("heldout_recall_right_pair", "held-out recall with its pair, as it answers"),
                ("recall", "alone: recall"), *rows[1:]]
    scores = [f"{label} **{card[key]:.0%}**" for key, label in rows if key in card]
    if scores:
        lines.append("Report card: " + " · ".join(scores))
    return "\n\n".join(lines)


def unusable_note(assistant) -> str:
    broken = [a for a in assistant.adapters() if not a.usable]
    if not broken:
        return ""
    return "Unavailable adapters: " + "; ".join(f"**{_safe(a.name)}** ({_safe(a.problem)})" for a in broken)


def respond(assistant, message: str, display: list, conversation: list, adapter: str | None,
            max_tokens: float, temperature: float, ground: bool = False, user: str | None = None,
            on_done=None) -> Iterator[tuple[list, list, str, list]]:
    """Stream one answer. Yields (chatbot messages, model conversation, textbox value, suggestions).

    The label under the answer names the adapter (with `auto`: the one chosen and why), and says
    whether the answer is checked against the adapter's Q&A; the pair it was checked against, or
    the grounding sources, follow it. Suggestions are the closest checked questions, offered as
    one-click questions when the answer is not checked. `user` is who asks (a question without a
    checked answer is recorded for the trainers under it); `on_done(answer, shown)` is called with
    the finished answer before the last yield (ui.chats keeps it in the chat's history). An empty
    question never reaches this: ui.chats.responder leaves the page as it is.
    """
    question = (message or "").strip()
    conversation = [*conversation, {"role": "user", "content": question}]
    display = [*display, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
    try:
        settings = GenerationSettings(max_tokens=int(max_tokens), temperature=float(temperature))
        answer = assistant.answer(conversation, adapter, settings, ground=bool(ground), user=user)
        with closing(answer):  # a closed tab (Gradio closes this generator) stops the decode at once
            for _ in answer:
                shown = _labelled(_safe_text(answer.text) + " ▌", _safe(answer.label), evidence_markdown(answer))
                display[-1] = {"role": "assistant", "content": shown}
                yield display, conversation, "", []
    except (AdapterError, EngineError, ValueError) as exc:
        display[-1] = {"role": "assistant", "content": f"⚠️ {exc}"}
        yield display, conversation[:-1], question, []  # keep the question so nothing typed is lost
        return
    shown = _labelled(_safe_text(answer.text) or "(no answer)", _trust_label(answer), evidence_markdown(answer))
    display[-1] = {"role": "assistant", "content": shown}
    # A withheld answer is not a turn the model said: it stays out of the next prompt.
    said = [] if answer.withheld else [{"role": "assistant", "content": answer.text}]
    if on_done is not None:
        on_done(answer, shown)
    yield display, [*conversation, *said], "", answer.suggestions


def _trust_label(answer) -> str:
    """The label, its trust mark in bold: what a farmer must see at a glance."""
    mark = {"no checked answer": "⚠️ **No checked answer**", "not checked — may be wrong": "⚠️ **Not checked — may "
            "be wrong**"}.get(answer.trust_mark, f"✅ **{_safe(answer.trust_mark.removeprefix('✓ '))}**")
    return f"{_safe(answer.label.rsplit(' · ', 1)[0])} · {mark}"


def _safe_text(text: str) -> str:
    """Model or Q&A text shown as text: no HTML; markdown emphasis kept harmless."""
    return str(text).replace("<", "&lt;")


def suggestion_buttons(suggestions: list[str]) -> list:
    """The "Did you mean…" line and up to three buttons: a click asks that checked question."""
    import gradio as gr

    shown = list(suggestions or [])[:SUGGESTION_BUTTONS]
    return [gr.Markdown(visible=bool(shown))] + [gr.Button(value=q, visible=True) for q in shown] + \
        [gr.Button(value="", visible=False) for _ in range(SUGGESTION_BUTTONS - len(shown))]


def _labelled(text: str, label: str, sources: str = "") -> str:
    return f"{text}\n\n<sub>— {label}</sub>" + (f"\n\n{sources}" if sources else "")


def clear() -> tuple[list, list, str, list]:
    return [], [], "", []


# --- knowledge: grounding and the automatic adapter -------------------------------------------

def knowledge_note(assistant) -> str:
    problem = getattr(assistant, "knowledge_problem", "")
    return f"⚠️ Grounding and automatic adapter are off: {_safe(problem)}" if problem else ""


def knowledge_card(assistant) -> str:
    from assistant.grounding.plan import ROUTE_THRESHOLD

    lines = [f"**Automatic** — each question goes to the adapter whose Q&A pairs hold its nearest match "
             f"(similarity ≥ {ROUTE_THRESHOLD:.2f}); below that the base model answers. The answer's label "
             "names the adapter chosen and why."]
    held = assistant.indexed()
    if held is None:
        lines.append(knowledge_note(assistant) or "⚠️ The knowledge index is not available.")
    else:
        lines.append("Indexed: " + (", ".join(f"{k} ({n} pairs)" for k, n in sorted(held.items())) or "nothing yet"))
    return "\n\n".join(lines)


def evidence_markdown(answer) -> str:
    """The pair a checked answer agrees with (question and answer, adapter and version), then the
    grounding sources; nothing for an answer that is not checked and not grounded."""
    parts = []
    pair = answer.checked_against
    if pair is not None:
        parts.append(f"<sub>Checked against the Q&A of {_safe(pair.adapter)} v{pair.version}: "
                     f"“{_safe(pair.question)}” → “{_safe(pair.answer)}”</sub>")
    if answer.plan.sources:
        items = " · ".join(f"“{_safe(m.question)}” ({m.adapter}, {m.similarity:.2f})" for m in answer.plan.sources)
        parts.append(f"<sub>Sources: {items}</sub>")
    return "\n\n".join(parts)


def _safe(text: str) -> str:
    """Uploaded text is shown, never interpreted: no markdown, no HTML."""
    return str(text).replace("\\", "\\\\").replace("<", "&lt;").replace("*", "\\*").replace("_", "\\_") \
        .replace("`", "\\`").replace("[", "\\[").replace("\n", " ")[:300]
