"""Train tab, "Versions": each adapter's versions with their report cards and which one serves;
make any version serve in one click (promote or roll back, no retraining); train the next version
from the answered questions, watch it, and see the gate's decision.

Trainers only: every handler checks the role on the server (as ui.access.guard does), and is
given the trainer's name, which is recorded with what they changed. The next version runs in the
job worker (assistant.jobs, `assistant adapters next`); these handlers only start and watch it.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator

import gradio as gr

from assistant.registry import AdapterError
from assistant.store import StoreError
from assistant.training.evaluate import CARD_ROWS
from assistant.training.lineage import sync_queue
from ui.access import TRAINER, username
from ui.text import cell, escape

STATUS = {"serving": "✅ serving", "candidate": "⏸ candidate", "kept": "kept", "unusable": "❌ unusable"}


def mount(assistant, jobs, access) -> None:
    """The Versions section, built inside the Train tab."""
    with gr.Accordion("Versions: which one serves, and the next version", open=False, elem_id="versions"):
        gr.Markdown("Every trained version is kept. One serves the chat, the API and *auto*; any other can be made "
                    "to serve again in one click, without retraining. **Train next version** trains on the serving "
                    "version's Q&A plus the questions answered in *Questions to answer*, with the same settings, "
                    "and promotes it only if its scores do not fall (see the gate's decision below).")
        with gr.Row():
            name = gr.Dropdown(choices=names(assistant), value=None, label="Adapter", elem_id="versions-adapter")
            version = gr.Dropdown(choices=[], value=None, label="Version", elem_id="versions-version")
        table = gr.Markdown(elem_id="versions-table")
        with gr.Row():
            serve = gr.Button("Make this version serve", elem_id="versions-serve")
            train_next = gr.Button("Train next version", variant="primary", elem_id="versions-next")
            stop = gr.Button("Cancel the next version", variant="stop", elem_id="versions-cancel")
        status = gr.Markdown(elem_id="versions-status")
        progress = gr.HTML(elem_id="versions-progress")
        decision = gr.Markdown(elem_id="versions-decision")
        started = gr.State(None)  # the id of the job this page started

    def trainer(action, fn):
        return _as_trainer(access, action, fn)

    # Opening the list refreshes its choices only, never its value (a late reply could undo a pick).
    name.focus(trainer("see adapter versions", lambda _user: gr.Dropdown(choices=names(assistant))), None, name)
    name.change(trainer("see adapter versions", lambda _user, n: show(assistant, n)), name, [table, version])
    serve.click(trainer("promote and roll back adapters", lambda user, n, v: make_serving(assistant, user, n, v)),
                [name, version], [status, table, version])
    stop.click(trainer("train adapters", lambda _user: cancel(jobs)), None, status)

    def follow(_user, job_id):
        yield from watch(jobs, job_id)

    train_next.click(trainer("train adapters", lambda user, n: start_next(jobs, assistant, user, n)), name,
                     [status, started]) \
        .then(trainer("train adapters", follow), started, [progress, decision]) \
        .then(trainer("see adapter versions", lambda _user, n: show(assistant, n)), name, [table, version])

    # A reload reattaches to a next version still queued or running, as the Train tab does for a
    # training (gr.on without triggers is the page's load). Its table is refreshed once it ends,
    # only when one was reattached: a reply to a fresh page must not undo a pick made meanwhile.
    gr.on(None, on_load(access, jobs, assistant), None, [status, started, name, progress, decision]) \
        .then(on_load_end(access, assistant), [started, name], [table, version])


def names(assistant) -> list[str]:
    return sorted({a.name for a in assistant.registry.all_versions()})


def show(assistant, name: str | None):
    """(versions table markdown, version dropdown set to the serving one)."""
    from assistant.serving import describe_versions

    if not name:
        return "", gr.Dropdown(choices=[], value=None)
    try:
        rows = describe_versions(assistant.registry, name)
    except AdapterError as exc:
        return f"❌ {cell(str(exc))}", gr.Dropdown(choices=[], value=None)
    return versions_markdown(rows), gr.Dropdown(choices=[(f"v{r['version']} ({r['status']})", r["version"]) for r in rows],
                                                value=next((r["version"] for r in rows if r["serving"]), None))


def versions_markdown(rows: list[dict]) -> str:
    """One row per version: status, report card (after training), what its data added, the gate."""
    head = "| version | status | " + " | ".join(label for _, label in CARD_ROWS) + " | data | gate |"
    lines = [head, "|" + "---|" * (len(CARD_ROWS) + 4)]
    for row in reversed(rows):  # newest first
        after = (row.get("report_card") or {}).get("after") or {}
        scores = " | ".join(f"{after[key]:.0%}" if isinstance(after.get(key), float) else "–" for key, _ in CARD_ROWS)
        lineage = row.get("lineage")
        data = (f"+{lineage['added']} added, {lineage['replaced']} replaced from v{lineage['trained_from']['version']}"
                + (f" (answered by {', '.join(lineage['answered_by'])})" if lineage["answered_by"] else "")
                ) if lineage and lineage.get("trained_from") else (row.get("dataset") or {}).get("source", "")
        lines.append(f"| v{row['version']} | {STATUS[row['status']]} | {scores} | {cell(data)} | "
                     f"{cell(gate_text(row.get('decision')))} |")
    return "\n".join(lines)


def gate_text(decision: dict | None) -> str:
    if not decision:
        return ""
    if decision.get("passed"):
        return "passed"
    return "refused: " + "; ".join(decision.get("reasons") or [])


def make_serving(assistant, user: str | None, name: str | None, version) -> tuple:
    """Promote or roll back to the chosen version; (status, table, dropdown). Errors are shown, never raised."""
    from assistant.serving import make_serving as serve

    if not name or version is None:
        return ("❌ Choose the adapter and the version first.", *show(assistant, name))
    try:
        adapter = serve(assistant.registry, name, version, "serve", by=user or "")
    except (AdapterError, OSError) as exc:
        return (f"❌ {cell(str(exc))}", *show(assistant, name))
    assistant.sync_knowledge()  # its Q&A is indexed now, so the next chat is checked against it
    note = ""
    try:  # what it holds shows answered to those who asked; after a rollback, what it lacks does not
        _, reopened = sync_queue(assistant.store, assistant.registry, adapter)
        if reopened:
            note = (f" {reopened} answered question{'s' if reopened != 1 else ''} it does not hold will be trained "
                    "into the next version again.")
    except (ValueError, OSError, StoreError) as exc:
        note = f" The questions to answer could not be updated: {cell(str(exc))}"
    return (f"**{cell(adapter.name)} v{adapter.version}** serves now (no retraining).{note}", *show(assistant, name))


def start_next(jobs, assistant, user: str | None, name: str | None) -> tuple[str, str | None]:
    """Start the next version in the worker; (status line, the job's id or None when none started)."""
    if not name:
        return "❌ Choose the adapter first.", None
    try:
        current = assistant.registry.get(name)
    except AdapterError as exc:
        return f"❌ {cell(str(exc))}", None
    waiting = answered_count(assistant, name)
    if waiting == 0:
        return f"❌ No newly answered questions for **{cell(name)}**: answer some in *Questions to answer* first.", None
    job = jobs.next_version(name, by=user or "")
    if job.state == "failed":
        return f"❌ {cell(job.error or 'could not start the worker')}", None
    count = "" if waiting is None else f" with {waiting} newly answered question{'s' if waiting != 1 else ''}"
    return f"Training **{cell(name)}** v{current.version}'s next version{count}…", job.id


def cancel(jobs) -> str:
    return ("Cancelling… the serving version stays (one stopped during its gate is kept as a candidate)."
            if jobs.cancel(kind="next")
            else "No next version is being trained.")


def answered_count(assistant, name: str) -> int | None:
    """How many answered questions wait to be trained into `name` (None: no queue in this install)."""
    try:
        from assistant import questions
    except ImportError:
        return None
    if assistant.store is None:
        return None
    try:
        return len(questions.answered_pairs(assistant.store, name))
    except Exception:  # the worker reads the queue again and says what is wrong, in the progress line
        return None


def watch(jobs, job_id: str | None, poll_s: float = 0.5) -> Iterator[tuple[str, str]]:
    """Stream (progress html, gate decision markdown) of one next-version job until it ends."""
    job = next((j for j in jobs.jobs if j.id == job_id), None) if job_id else None
    while job is not None:
        finished = job.finished
        yield progress_html(job), decision_markdown(job)
        if finished:
            return
        time.sleep(poll_s)
    yield "", ""


def reattach(jobs, assistant) -> Iterator[tuple]:
    """After a reload, the newest next-version job if it is not finished, streamed as the button
    streams it: (status, its id, the adapter dropdown, progress html, decision markdown). The adapter
    is chosen in the first reply only (the user may pick another meanwhile); nothing to reattach to
    changes nothing on the page (gr.skip)."""
    job = jobs.latest("next")
    if job is None or job.finished:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    try:
        of = f" v{assistant.registry.get(job.name).version}'s"
    except AdapterError:  # deleted meanwhile: the job says what became of it
        of = "'s"
    first = True
    for shown in watch(jobs, job.id):
        head = ((f"Training **{cell(job.name)}**{of} next version… (started before this page was loaded)", job.id,
                 gr.Dropdown(choices=names(assistant), value=job.name)) if first else (gr.skip(),) * 3)
        first = False
        yield *head, *shown


def on_load(access, jobs, assistant):
    """The page-load handler of reattach: trainers only; anyone else gets nothing (no error: they
    did not ask for anything, and never see this section)."""
    def reattach_on_load(request: gr.Request):
        if access.allows(username(request), TRAINER):
            yield from reattach(jobs, assistant)
        else:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
    return reattach_on_load


def on_load_end(access, assistant):
    """After on_load's stream: the versions table of a reattached job's adapter, as after the button."""
    def reattached_versions(request: gr.Request, job_id, name):
        if job_id is None or not access.allows(username(request), TRAINER):
            return gr.skip(), gr.skip()
        return show(assistant, name)
    return reattached_versions


def progress_html(job) -> str:
    last = job.last
    state = {"queued": "waiting for the worker (one job runs at a time)", "done": "done",
             "running": f"{last.get('phase', '')}: {last.get('message', '')}",
             "failed": f"failed: {job.error}", "cancelled": job.error or "cancelled"}[job.state]
    return f"<div id='versions-job' data-state='{job.state}'><b>{escape(job.name)}</b> — {escape(state)}</div>"


def decision_markdown(job) -> str:
    if job.result is None:
        return ""
    decision, adapter = job.result.get("decision") or {}, job.result.get("adapter") or {}
    head = (f"### ✅ v{adapter.get('version')} passed the gate and serves" if decision.get("passed") else
            f"### ⏸ v{adapter.get('version')} stays a candidate; v{decision.get('serving_version')} still serves")
    lines = [head, "| | serving | new | may fall by |\n|---|---:|---:|---:|"]
    for row in decision.get("rows") or []:
        lines[-1] += (f"\n| {row['label']} ({row['questions']} questions) | {row['serving']:.0%} | "
                      f"**{row['candidate']:.0%}** | {row['allowed_drop']:.0%} |")
    lines += [f"- {cell(reason)}" for reason in decision.get("reasons") or []]
    lines += [f"- not yet learnt: “{cell(m['question'])}” → “{cell(m['answer'])}”" for m in decision.get("misses") or []][:5]
    return "\n\n".join(lines)


def _as_trainer(access, action: str, fn):
    """Like ui.access.guard, but `fn` gets the trainer's name first (recorded with the change)."""
    def check(request):
        message = access.denial(username(request), TRAINER, action)
        if message:
            raise gr.Error(message, print_exception=False)
        return username(request)

    if inspect.isgeneratorfunction(fn):
        def handler(request: gr.Request, *args):
            yield from fn(check(request), *args)
    else:
        def handler(request: gr.Request, *args):
            return fn(check(request), *args)
    own = list(inspect.signature(fn).parameters.values())[1:]
    handler.__signature__ = inspect.Signature(
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=gr.Request), *own])
    handler.__annotations__ = {"request": gr.Request}
    handler.__name__ = action.replace(" ", "_")
    return handler
