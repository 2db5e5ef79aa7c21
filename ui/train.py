"""Training tab handlers: upload and validate, start/cancel a job, watch its progress, show the card.

Training runs as a separate lower-priority process (assistant.jobs), so chats keep streaming; these
handlers only start it and read its progress.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.data import MAX_FILE_BYTES
from assistant.registry import AdapterError, validate_name
from assistant.training.config import AUGMENT_FORMS, GROUNDED_RECIPE, PRESETS, TEST_PRESETS
from assistant.training.evaluate import CARD_ROWS
from ui import tempfiles
from ui.text import cell, escape

FAST = PRESETS["fast"]

# Each recipe a user may pick, in one line: what it is for, and how long its training takes on this
# machine (2 CPU cores; the README's measured table: fast on xylandia 29-30 s, on agriculture's 230
# pairs 635 s; seed on xylandia 494 s until learnt, 1239 s in all).
RECIPES = {
    "fast": "Fast (recommended) — learns your facts and keeps general knowledge: about 30 s of training for a "
            "few facts, about 11 min for 230 pairs",
    "seed": "Proof of concept (slow) — the original recipe, for comparison only: about 20 min for a few facts, "
            "and it forgets general knowledge",
}
GROUNDED_LABEL = (f"Prepare for grounded chat (for a checked-only adapter, whose every answer is given with its Q&A "
                  f"pair shown): also train on {GROUNDED_RECIPE['grounded_per_step']} pairs a step shown with facts "
                  f"from the Q&A, their own or others', with LoRA rank {GROUNDED_RECIPE['rank']} on the MLP layers "
                  "(the rank above is not used). It follows the right pair and keeps general knowledge better; it "
                  "answers worse alone (see the report card)")
WORDINGS_LABEL = (f"Learn new wordings: also train on up to {AUGMENT_FORMS} rule-made rewordings of each question "
                  "(answers unchanged), for questions worded unlike yours; training takes up to "
                  f"{AUGMENT_FORMS + 1}× longer")
# Test presets (config.TEST_PRESETS) are offered only where this is set to 1: the browser tests, which
# train the tiny model; the CLI's --preset picks any preset without it.
SHOW_TEST_PRESETS = "ASSISTANT_TEST_PRESETS"
TEST_RECIPES = {"tiny": "Tiny (a quick check) — for the test suite's tiny model: a few steps"}


def preset_choices(show_tests: bool | None = None) -> list[tuple[str, str]]:
    """The Recipe radio's (label, preset) pairs: the user's recipes, and the test ones where asked for."""
    if show_tests is None:
        show_tests = os.environ.get(SHOW_TEST_PRESETS) == "1"
    offered = RECIPES | ({n: TEST_RECIPES[n] for n in sorted(TEST_PRESETS)} if show_tests else {})
    return [(label, name) for name, label in offered.items()]


def validate_upload(path: str | None, assistant=None, max_bytes: int = MAX_FILE_BYTES) -> tuple[str, str | None, str]:
    """(report markdown, path of a validated file or None, suggested adapter name).

    The file is read in a child process under memory and time limits (ui.upload_check), never in
    the app. With an assistant, the report includes the similar-question lint (within the file,
    and against the other adapters' stored Q&A).
    """
    if not path:
        return "Upload a CSV, Excel, JSON Lines or JSON file with question and answer columns.", None, ""
    from assistant.lint import registry_datasets
    from ui.upload_check import validate_in_child

    datasets = registry_datasets(assistant.registry) if assistant is not None else []
    markdown, accepted = validate_in_child(path, Path(path).name, max_bytes, datasets, lint=assistant is not None)
    return markdown, (path if accepted else None), (_suggest_name(Path(path).stem) if accepted else "")


def check_upload(path: str | None, assistant=None, max_bytes: int = MAX_FILE_BYTES) -> Iterator[tuple[str, str | None, str]]:
    """validate_upload for the Train tab, in two steps: the report as soon as the file is read
    (about a second), then again with the lint, whose process first loads the embedding model."""
    first = validate_upload(path, None, max_bytes)
    if assistant is None or first[1] is None:
        yield first
        return
    yield first[0] + "\n\n🔎 Looking for similar questions (here and in the other adapters)…", first[1], first[2]
    final = validate_upload(path, assistant, max_bytes)
    if final[1] is None:  # the lint's process hit a limit: the file itself was fine, so keep its report
        final = first[0] + "\n\n⚠️ Similar-question lint skipped: " + final[0].removeprefix("❌ "), first[1], first[2]
    yield final


def _suggest_name(stem: str) -> str:
    name = "".join(c if c.isalnum() and c.isascii() else "-" for c in stem.lower()).strip("-_")[:48]
    return name if name and name[0].isalnum() else ""


POLICY_CHOICES = [("Checked only", "checked"), ("Open", "open")]
POLICY_INFO = ("Checked only: answers only what the Q&A covers, other questions go to you — for advice people act on "
               "(doses, diseases, practice). Open: answers everything, marking what the Q&A does not cover as "
               "“not checked” — for demos and general chat.")


def policy_choices(assistant) -> list[tuple[str, str]]:
    return [(f"{a.name} ({'checked only' if a.answer_policy == 'checked' else 'open'})", a.name)
            for a in assistant.registry.list() if a.usable]


def policy_for_name(assistant, name: str | None):
    """The policy radio for a name typed: an existing adapter's own, else unchanged."""
    import gradio as gr

    try:
        return gr.Radio(value=assistant.registry.get((name or "").strip()).answer_policy)
    except AdapterError:
        return gr.Radio()


def grounded_for_policy(policy: str | None):
    """The "Prepare for grounded chat" box for the policy chosen: ticked for checked only, whose every answer is
    given with its covering pair in the prompt (agriculture ships so); a trainer may still untick it."""
    import gradio as gr

    return gr.Checkbox(value=policy == "checked")


def set_policy(assistant, name: str | None, policy: str) -> str:
    """Change how an adapter answers; returns a status line (errors are returned, never raised)."""
    from assistant.trust import POLICY_HELP

    if not name:
        return "❌ Choose the adapter first."
    try:
        adapter = assistant.registry.set_answer_policy(name, policy)
    except (AdapterError, OSError) as exc:
        return f"❌ {exc}"
    return f"**{adapter.name}** now answers: {POLICY_HELP[adapter.answer_policy]}"


def start(jobs, uploads_dir: Path, path: str | None, name: str, preset: str, description: str, rank: float,
          learning_rate: float, epochs: float, replay: float, allow_conflicts: bool, grounded: bool = False,
          answer_policy: str = "open", wordings: bool | None = None) -> str:
    """Start a job; returns a status line (errors are returned, never raised)."""
    if not path:
        return "❌ Upload and validate a file first."
    try:
        validate_name((name or "").strip())
    except AdapterError as exc:
        return f"❌ {exc}"
    if not Path(path).is_file():  # its job took it (uploads are removed then), or it aged out
        return "❌ That upload is gone (each upload trains one adapter); upload the file again."
    # Keep our own copy: Gradio's temporary upload can vanish before the job reads it.
    uploads_dir.mkdir(parents=True, exist_ok=True)
    copy = uploads_dir / f"{int(time.time())}-{_suggest_name(Path(path).stem) or 'upload'}{Path(path).suffix.lower()}"
    shutil.copyfile(path, copy)
    overrides = {"allow_conflicts": bool(allow_conflicts)}
    if preset == "fast":  # advanced settings apply to the tunable preset; seed is the PoC, exactly
        overrides |= {"rank": int(rank), "alpha": 2 * int(rank), "learning_rate": float(learning_rate),
                      "epochs": int(epochs), "replay_per_step": int(replay), "grounded_per_step": 0}
        if grounded:  # the recipe agriculture ships with: its rank and layers replace the slider's rank
            overrides |= GROUNDED_RECIPE
        if wordings is not None:  # unticked: none; ticked: the fast preset's own count, else AUGMENT_FORMS
            overrides["augment"] = (FAST.augment or AUGMENT_FORMS) if wordings else 0
    try:
        job = jobs.start(copy, name.strip(), preset, overrides, description=(description or "").strip(),
                         answer_policy=answer_policy if answer_policy in ("checked", "open") else "open")
    except RuntimeError as exc:
        copy.unlink(missing_ok=True)
        return f"❌ {exc}"
    tempfiles.discard_upload(path)  # the job has its own copy; Gradio's temporary one goes now
    return f"Started training **{job.name}**."


def cancel(jobs) -> str:
    return "Cancelling… nothing will be published." if jobs.cancel(kind="train") else "No training is running."


def progress_html(job, ahead: int = 0) -> str:
    if job is None:
        return ""
    last = job.last
    total, step = last.get("total") or 0, last.get("step") or 0
    share = 100 if job.state == "done" else (int(100 * step / total) if total and last.get("phase") == "train" else 0)
    eta = last.get("eta_s")
    eta_text = f" · about {eta:.0f} s left" if eta is not None and last.get("phase") == "train" else ""
    state = {"queued": f"waiting for the worker: {ahead} job{'s' if ahead != 1 else ''} ahead (one job runs at a time)",
             "running": f"{last.get('phase', '')}: {last.get('message', '')}{eta_text}",
             "done": "done", "failed": f"failed: {job.error}", "cancelled": job.error or "cancelled"}[job.state]
    return (f"<div id='train-progress' data-state='{job.state}'><b>{escape(job.name)}</b> — {escape(state)}"
            f"<div style='background:#e5e7eb;border-radius:4px;height:12px;margin-top:4px'>"
            f"<div style='width:{share}%;background:#16a34a;height:12px;border-radius:4px'></div></div></div>")


def loss_frame(job):
    import pandas as pd

    points = job.losses if job is not None else []
    return pd.DataFrame({"step": [p[0] for p in points], "loss": [p[1] for p in points]})


def report_card_markdown(job) -> str:
    if job is None or job.result is None:
        return ""
    adapter = job.result["adapter"]
    card = adapter.get("report_card") or {}
    lines = [f"### Report card — {adapter['name']} v{adapter['version']}",
             f"Trained in {job.result['train_seconds']:.0f} s ({job.result['steps']} steps).",
             "| | before | after |\n|---|---:|---:|"]
    for key, label in CARD_ROWS:
        if key in card.get("after", {}):
            before = card.get("before", {}).get(key)
            lines[-1] += f"\n| {label} | {'' if before is None else f'{before:.0%}'} | **{card['after'][key]:.0%}** |"
    for miss in card.get("misses", [])[:5]:
        lines.append(f"- missed: “{cell(miss['question'])}” → “{cell(miss['answer'])}”")
    for lost in card.get("forgotten", [])[:5]:
        lines.append(f"- forgot: “{cell(lost['question'])}” → “{cell(lost['answer'])}”")
    return "\n\n".join(lines)


def watch(jobs, poll_s: float = 0.5) -> Iterator[tuple]:
    """Stream (progress html, loss frame, card markdown, published name) until the job ends."""
    job = jobs.latest("train")
    if job is None:
        yield "", loss_frame(None), "", ""
        return
    while True:
        finished = job.finished
        yield (progress_html(job, jobs.position(job)), loss_frame(job), report_card_markdown(job),
               job.name if job.state == "done" else "")
        if finished:
            return
        time.sleep(poll_s)


def deletable(assistant) -> list[str]:
    """Names of trained (not shipped) adapters: the ones a trainer may delete."""
    return sorted({a.name for a in assistant.registry.all_versions() if a.source == "local"})


def delete(assistant, name: str | None, sure: bool):
    """Delete every version of a trained adapter; returns (status markdown, refreshed dropdown)."""
    import gradio as gr

    if not name:
        message = "❌ Choose the adapter to delete."
    elif not sure:
        message = "❌ Tick “Yes, delete every version of it” first: this cannot be undone."
    else:
        try:
            removed = assistant.registry.delete(name)
        except AdapterError as exc:
            message = f"❌ {exc}"
        else:
            for adapter in removed:  # free the engine's copy once no chat is using it
                assistant.engine.unload_adapter(adapter.key)
            message = f"Deleted **{cell(name)}** ({len(removed)} version{'s' if len(removed) != 1 else ''})."
    return message, gr.Dropdown(choices=deletable(assistant), value=None)
