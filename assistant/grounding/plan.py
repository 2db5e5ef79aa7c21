"""How one question will be answered: which adapter (`auto` routes), and which Q&A pairs ground it.

The index only finds near pairs; this module decides what counts as near enough. Measured on the
counterfactual set (benchmarks/grounding.py): held-out paraphrases sit at 0.82-0.97 from their
pair, general questions of the same shape about another subject reach 0.71, so grounding needs
GROUND_THRESHOLD and the same names (grounding.names); routing needs ROUTE_THRESHOLD.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from assistant.grounding.errors import KnowledgeError
from assistant.grounding.index import GROUND_TOP_K, Knowledge, Match
from assistant.grounding.names import names_agree

AUTO = "auto"  # the adapter choice that routes each question
GROUND_THRESHOLD = 0.70  # a pair this close to the question (and naming the same things) goes into the prompt
ROUTE_THRESHOLD = 0.60  # below this nearest-neighbour similarity, `auto` answers with the bare base
ROUTE_CANDIDATES = 3  # near pairs read for a crop or animal a checked-only adapter knows (checked_domain_route)


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
    question: str = ""  # the text looked up: the last user message
    vector: object = None  # its embedding, when routing or grounding computed it (the answer's checks reuse it)

    @property
    def nearest(self) -> Match | None:
        return self.route.nearest if self.route else None


def is_auto(adapter: str | None) -> bool:
    return (adapter or "").strip().lower() == AUTO


def ground_question(knowledge: Knowledge, question: str, adapter=None, threshold: float = GROUND_THRESHOLD,
           k: int = GROUND_TOP_K, vector=None) -> tuple[list[Match], Match | None]:
    """(pairs above the threshold, the nearest pair whatever its score) from one adapter's pairs,
    or from every indexed adapter's when adapter is None, that name what the question names.
    `vector`: the question's embedding, when already computed."""
    scope = None if adapter is None else [(adapter.name, adapter.version)]
    found = knowledge.search_vector(knowledge.embedder.encode([question]) if vector is None else vector, scope, k)
    return [m for m in found if m.similarity >= threshold and names_agree(question, m)], (found[0] if found else None)


def route_question(knowledge: Knowledge, question: str, registry, threshold: float = ROUTE_THRESHOLD, vector=None) -> Route:
    """The serving adapter whose pairs hold the question's nearest neighbour, or the base below the
    threshold, unless a checked-only adapter's near pairs are about the crop or animal it names."""
    adapters = [a for a in registry.list() if a.usable]
    serving = [(a.name, a.version) for a in adapters]
    found = knowledge.search_vector(knowledge.embedder.encode([question]) if vector is None else vector, serving,
                                    k=ROUTE_CANDIDATES)
    route = decide_route(found[0] if found else None, threshold)
    if route.adapter is None and found:
        checked_only = {a.name for a in adapters if a.answer_policy == "checked"}
        return checked_domain_route(question, found, checked_only, threshold) or route
    return route


def checked_domain_route(question: str, found: list[Match], checked_only: set[str], threshold: float) -> Route | None:
    """The checked-only adapter whose near pair names a crop or animal the question names, when nothing
    is near enough to route by similarity.

    The bare base answers everything, unchecked: "my tomato leaves have yellow spots what do i do" went
    to it (nearest pair 0.51, about tomato leaf curl) and got "Wash the leaves with warm water". The
    farming adapter that answers only from its checked Q&A instead withholds what it cannot check,
    offers its nearest checked questions, and records the question for its trainers. Open adapters
    gain nothing over the base here, so only checked-only ones take a question this way; a question
    that names no crop or animal ("What is the capital of France?") still goes to the base.
    """
    from assistant.checking import subjects_in

    named = subjects_in(question)
    for match in found if named else []:
        shared = named & subjects_in(f"{match.question} {match.answer}")
        if shared and match.adapter in checked_only:
            return Route(match.adapter, match,
                         f"about {sorted(shared)[0]}, which {match.adapter} answers from its checked Q&A only: "
                         f"nearest '{shorten(match.question)}' ({match.similarity:.2f} < {threshold:.2f})")
    return None


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


def plan_answer(knowledge: Knowledge | None, registry, messages: list[dict], adapter: str | None,
                ground: bool = False, unavailable: str = "") -> Plan:
    """Choose the adapter (routing `auto`) and the grounding pairs for the last user message.

    Grounding pairs' answers become facts on the question (`with_facts`); they never enter the
    stored conversation. `unavailable` says why there is no index, when there is none.
    """
    question = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
    plan = Plan(adapter=None if is_auto(adapter) else adapter, messages=list(messages), ground=ground,
                question=question)
    if not (ground or is_auto(adapter)):
        return plan
    if knowledge is None:
        plan.note = unavailable or "the knowledge index is not available"
        if is_auto(adapter):
            plan.route = Route(None, None, f"no routing: {plan.note}")
        return plan
    try:
        knowledge.sync(registry)  # a version published since the last refresh is indexed now
        vector = plan.vector = knowledge.embedder.encode([question])  # once, for routing, grounding, coverage
        if is_auto(adapter):
            plan.route = route_question(knowledge, question, registry, vector=vector)
            plan.adapter = plan.route.adapter
        if ground:
            scope = registry.get(plan.adapter) if plan.adapter and plan.adapter.lower() not in ("none", "base") else None
            plan.sources, nearest = ground_question(knowledge, question, scope, vector=vector)
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
