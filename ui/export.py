"""Export tab handlers: choose an adapter and a format, export it, show the verification and links.

The export runs as a job in the app's worker process (assistant.jobs: lower priority, one job at a
time, after any training ahead of it); the handler streams its phases. Only files inside the exports
directory are ever offered, only for exports that passed verification, and only through this
handler, which only trainers may call: the files are linked into a random directory for this one
request (ui.tempfiles). The exports directory itself is never served (the whole data directory is
in Gradio's blocked paths), so no one can fetch an export by guessing its path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from assistant.registry import AdapterError
from ui import tempfiles
from ui.text import escape

FORMAT_CHOICES = [
    ("Merged GGUF, 4-bit Q4_K_M (llama.cpp, Ollama; smallest)", "gguf-q4_k_m"),
    ("Merged GGUF, 8-bit Q8_0", "gguf-q8_0"),
    ("Merged GGUF, f16", "gguf-f16"),
    ("LoRA GGUF only (use with the base GGUF: llama-cli --lora, Ollama ADAPTER)", "lora-gguf"),
    ("Merged Hugging Face safetensors (transformers)", "hf"),
]
PHASES = ("prepare", "convert", "merge", "quantize", "verify", "finish", "done")


def exports_dir(assistant) -> Path:
    return Path(assistant.registry.data_dir) / "exports"


def blocked_paths(data_dir: Path) -> list[str]:
    """Gradio's blocked_paths: the whole data directory, exports included (downloads are links
    made for one trainer's request, outside it)."""
    return [str(Path(data_dir).resolve())]


def adapter_choices(assistant) -> list[str]:
    return [a.name for a in assistant.registry.list() if a.usable]


def servable(path: Path, root: Path) -> bool:
    """True only for a regular file inside the exports directory (no links out of it)."""
    try:
        resolved = Path(path).resolve(strict=True)
        return resolved.is_file() and resolved.is_relative_to(Path(root).resolve())
    except OSError:
        return False


def progress_html(phase: str, message: str, state: str = "running") -> str:
    done = PHASES.index(phase) if phase in PHASES else 0
    steps = " → ".join(f"<b>{p}</b>" if p == phase else (f"{p} ✓" if i < done else p)
                       for i, p in enumerate(PHASES[:-1]))
    return (f"<div id='export-progress' data-state='{state}' data-phase='{escape(phase)}'>{steps}"
            f"<div>{escape(message)}</div></div>")


def verification_markdown(info: dict) -> str:
    verification = info.get("verification")
    adapter = info["adapter"]
    head = f"### {adapter['name']} v{adapter['version']} → {info['format']}"
    if not verification:
        return head + "\n\nNot verified."
    if verification.get("error"):
        return head + f"\n\n❌ **Verification FAILED**: {escape(verification['error'])}. The files are not offered."
    lines = [head, "| questions | count | same tokens as peft | peft recall | export recall | result |",
             "|---|---:|---:|---:|---:|---|"]
    for row in verification["sets"]:
        lines.append(f"| {row['set']} | {row['questions']} | {row['token_identical']:.0%} | "
                     f"{row['reference_recall']:.0%} | {row['export_recall']:.0%} | "
                     f"{'✅ ok' if row['passed'] else '❌ failed'} |")
    if verification["passed"]:
        lines.append("\n✅ **Verification passed**: the export answers like the adapter it came from.")
    else:
        lines.append("\n❌ **Verification FAILED**: its recall trails the peft model by more than "
                     f"{verification['tolerance']:.0%}. The files are not offered for download.")
    return "\n".join(lines)


def run(assistant, jobs, adapter_name: str | None, fmt: str | None, poll_s: float = 0.3) -> Iterator[tuple]:
    """Queue an export in the worker process; stream (progress html, verification, files, Modelfile)."""
    if not adapter_name:
        yield progress_html("prepare", "Choose an adapter first.", "error"), "", None, ""
        return
    try:
        assistant.registry.get(adapter_name)  # an unknown or broken adapter is refused here, at once
    except AdapterError as exc:
        yield progress_html("prepare", str(exc), "error"), "", None, ""
        return
    job = jobs.export(adapter_name, fmt)
    yield from follow(assistant, jobs, job, poll_s)


def follow(assistant, jobs, job, poll_s: float = 0.3) -> Iterator[tuple]:
    """Stream one export job's phases until it ends, then its verification and downloads."""
    while not job.finished:
        if job.state == "queued":
            ahead = jobs.position(job)
            yield progress_html("prepare", f"waiting for the worker: {ahead} job{'s' if ahead != 1 else ''} "
                                           "ahead of this one (training and exports run one at a time)"), "", None, ""
        else:
            last = job.last
            yield progress_html(last.get("phase", "prepare"), last.get("message", "starting")), "", None, ""
        time.sleep(poll_s)
    result = job.result
    if result is None:
        yield progress_html(job.last.get("phase", "prepare"), f"❌ {job.error or job.state}", "error"), "", None, ""
        return
    root = exports_dir(assistant)
    path = Path(result["path"])
    offered = [*map(Path, result["files"]), path / "export.json"]
    files = tempfiles.offer([p for p in offered if servable(p, root)]) if result["passed"] else None
    state = "passed" if result["passed"] else "failed"
    note = f"Done: {path.name}" if result["passed"] else f"Verification FAILED: {path.name}"
    modelfile = path / "Modelfile"
    yield (progress_html("done", note, state), verification_markdown(result["info"]), files,
           modelfile.read_text() if servable(modelfile, root) else "")
