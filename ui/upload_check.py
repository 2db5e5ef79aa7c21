"""The Train tab's upload check, run in a child process under memory and time limits.

Anyone with a trainer's login can upload a file, and reading it (and linting it) is where a small
hostile file does its damage. So the app never parses uploads itself: `python -m ui.upload_check`
reads the file, runs the similar-question lint and renders the report, niced, with its address
space and CPU time capped, and the app kills it at the wall-time limit. A child that hits a limit
gives a one-line "too large or complex to check" message, never a traceback, and costs the app
only the wait.

Why the child does the whole lint, cross-adapter part included: the index is the app's (one
owner, see assistant.grounding), and querying it row by row from the app would put the lint's
cost back into the app process. The child gets the paths of the other adapters' stored Q&A files
(what the index is built from), reads and embeds them with its own embedder, and never touches
the shared one, so chats never wait for a lint. The price is the child's start-up: importing torch
and loading the embedding model, 3-10 s on 2 cores. Only the rendered markdown comes back (a few
KB), not the records, so even the largest file in bounds costs the app nothing to receive.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from assistant.data import MAX_FILE_BYTES, DataReport
from ui.text import cell


@dataclass(frozen=True)
class Limits:
    # Address space while parsing (before torch is imported): the interpreter and the worst file
    # within the readers' bounds need about 300 MB (tests/test_hostile_files.py); this leaves room.
    parse_bytes: int = 1024 * 2**20
    # Address space for the lint: torch and the embedding model reserve about 1.6 GB of it (of
    # which ~600 MB is resident), the lint at LINT_MAX_ROWS rows adds little.
    lint_bytes: int = 4096 * 2**20
    # Wall time for reading a file (the worst in bounds took 9 s on 2 busy cores); past it the child
    # is killed. CPU time is capped at the same, in case the app cannot kill it.
    seconds: int = 120
    # ...and for reading and linting it: 10-20 s to import torch and load the model, then ~150 rows a
    # second on one niced core (a third of that on a busy machine), LINT_MAX_ROWS at most.
    lint_seconds: int = 300


# The lint embeds every question (~150 a second on one niced core): past this many rows it would
# take minutes, so the Train tab skips it with a warning (`assistant validate` lints any size).
LINT_MAX_ROWS = 5_000
NICENESS = 10  # below chats (and above training jobs, which run at 15)
_MEMORY_EXIT = 3
_LINT_PHASE = "upload_check: linting"  # written to stderr when the parse is done and the lint starts


def validate_in_child(path: str, source_name: str, max_bytes: int = MAX_FILE_BYTES,
                      datasets: list[tuple[str, int, str]] | None = None, lint: bool = False,
                      limits: Limits = Limits()) -> tuple[str, bool]:
    """(report markdown, whether the file can be used) from a child process; errors are markdown too."""
    request = {"path": str(path), "source_name": source_name, "max_bytes": int(max_bytes), "lint": bool(lint),
               "datasets": [list(d) for d in datasets or []], "limits": limits.__dict__}
    root = str(Path(__file__).resolve().parent.parent)
    cores = os.cpu_count() or 2
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
           # Half the cores for the lint's torch (chats keep the rest), and few malloc arenas: each
           # thread's arena reserves 64 MB of address space, which counts against the limit.
           "OMP_NUM_THREADS": str(max(1, cores // 2)), "MKL_NUM_THREADS": str(max(1, cores // 2)),
           "MALLOC_ARENA_MAX": "2", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    seconds = limits.lint_seconds if lint else limits.seconds
    try:
        done = subprocess.run([sys.executable, "-m", "ui.upload_check"], input=json.dumps(request),
                              capture_output=True, text=True, timeout=seconds, env=env)
    except subprocess.TimeoutExpired:
        return _too_complex(f"checking it takes more than {seconds} s"), False
    reply = _reply(done.stdout)
    if reply.get("markdown"):
        return reply["markdown"], bool(reply.get("accepted"))
    if reply.get("error"):
        return f"❌ {reply['error']}", False
    if done.returncode == -signal.SIGXCPU:
        return _too_complex(f"checking it takes more than {seconds} s of CPU"), False
    if done.returncode == _MEMORY_EXIT or -done.returncode in (signal.SIGKILL, signal.SIGABRT, signal.SIGSEGV):
        # Out of address space: Python raises MemoryError (our exit code); C code may abort instead.
        linting = _LINT_PHASE in done.stderr
        need = limits.lint_bytes if linting else limits.parse_bytes
        return _too_complex(f"it needs more than {need // 2**20:,} MB to {'lint' if linting else 'read'}"), False
    return (f"❌ The file could not be checked (the checking process stopped with exit code {done.returncode}); "
            "try again, or export it as CSV UTF-8"), False


def _too_complex(why: str) -> str:
    return (f"❌ The file is too large or complex to check: {why} (the limit for an upload). Split it, or "
            "export it as CSV UTF-8, and upload it again.")


def _reply(stdout: str) -> dict:
    try:
        reply = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
    except (json.JSONDecodeError, IndexError):
        return {}
    return reply if isinstance(reply, dict) else {}


# --- the child -----------------------------------------------------------------------------

def _child() -> int:
    request = json.loads(sys.stdin.read())
    limits = Limits(**request["limits"])
    # The hard limit is the lint's; the soft one, the parser's, is raised to it only once the file
    # is parsed (a process may raise its soft limit up to the hard one, never beyond).
    resource.setrlimit(resource.RLIMIT_AS, (limits.parse_bytes, limits.lint_bytes))
    seconds = limits.lint_seconds if request["lint"] else limits.seconds
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    os.nice(NICENESS)
    started = time.monotonic()
    try:
        reply = _check(request, limits)
    except MemoryError:
        os._exit(_MEMORY_EXIT)  # printing may need memory it has not got; the exit code says it all
    reply["stats"] = {"seconds": round(time.monotonic() - started, 2),
                      "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    print(json.dumps(reply, ensure_ascii=False), flush=True)
    return 0


def _check(request: dict, limits: Limits) -> dict:
    from assistant.data import DataError, load_qa_file

    try:
        report = load_qa_file(request["path"], source_name=request["source_name"], max_bytes=request["max_bytes"])
    except DataError as exc:
        return {"error": str(exc)}
    from assistant.training.augment import report_preview

    report.augmentation = report_preview(report.train)  # rules only: about 2 ms a training row
    if request["lint"]:
        if len(report.records) > LINT_MAX_ROWS:
            report.warnings.append(f"similar-question lint skipped: it checks files of up to {LINT_MAX_ROWS:,} rows "
                                   f"here (this one has {len(report.records):,}); `assistant validate` checks any size")
        else:
            print(_LINT_PHASE, file=sys.stderr, flush=True)
            resource.setrlimit(resource.RLIMIT_AS, (limits.lint_bytes, limits.lint_bytes))
            from assistant.grounding.embedder import Embedder
            from assistant.grounding.errors import KnowledgeError
            from assistant.lint import lint_records

            try:
                report.lint = lint_records(report.records, embedder=Embedder(), datasets=request["datasets"])
            except KnowledgeError as exc:
                report.warnings.append(f"similar-question lint skipped: {exc}")
    return {"markdown": describe_report(report), "accepted": True}


def describe_report(report: DataReport) -> str:
    """The validation report as markdown: counts, rejected rows, conflicts, warnings."""
    lines = [f"**{cell(report.source)}** — {report.rows_read} rows read, **{len(report.records)} accepted** "
             f"({len(report.train)} for training, {len(report.test)} held out), {len(report.rejected)} rejected, "
             f"{report.duplicates_folded} exact duplicates folded."]
    if report.rejected:
        lines.append("| row | why it was rejected |\n|---:|---|")
        lines[-1] += "".join(f"\n| {r.row} | {cell(r.reason)} |" for r in report.rejected[:50])
        if len(report.rejected) > 50:
            lines.append(f"…and {len(report.rejected) - 50} more.")
    for conflict in report.conflicts[:20]:
        answers = " / ".join(f"“{cell(a)}”" for a in conflict.answers)
        lines.append(f"⚠️ **Conflict** (rows {', '.join(map(str, conflict.rows))}): “{cell(conflict.question)}” → {answers}")
    for warning in report.warnings:
        lines.append(f"⚠️ {cell(warning)}")
    if report.augmentation:
        lines.append(_augmentation_markdown(report.augmentation))
    for finding in report.lint[:20]:
        lines.append(f"🔎 **Similar questions**: {cell(finding.message)}")
    if len(report.lint) > 20:
        lines.append(f"…and {len(report.lint) - 20} more similar-question findings.")
    problems = report.blocking_problems()
    lines.append("❌ " + "; ".join(problems) if problems else "✅ Ready to train.")
    return "\n\n".join(lines)


def _augmentation_markdown(preview: dict) -> str:
    about = "about " if preview["estimated"] else ""
    state = "on" if preview["on"] else "off unless you tick “Learn new wordings” under Advanced settings"
    examples = "".join(f"\n- “{cell(e['question'])}” → “{cell(e['form'])}”" for e in preview["examples"])
    return (f"🔁 **Question forms** ({state}): training would add {about}{preview['forms']} generated wordings for "
            f"{about}{preview['facts_augmented']} of {preview['facts']} facts, the answers unchanged (facts you already "
            f"wrote in several wordings get fewer; held-out rows are never used). For example:{examples}")


if __name__ == "__main__":
    sys.exit(_child())
