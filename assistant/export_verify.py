"""Verify an export against the peft model it came from, in a process of its own.

    python -m assistant.export_verify --spec spec.json --out result.json

The parent side (run_verification, called by assistant.export on the staged files) writes the spec,
runs this module as a child and reads its JSON result; a crash or a timeout becomes a failed
verification saying why. A separate process, so the two models loaded here never add to the memory
of the app or the export, and a crash in llama.cpp cannot take the caller down.

The child loads the export the way its users will (llama.cpp for GGUFs, the base GGUF + the exported
LoRA for lora-gguf, plain transformers for hf) and asks it the adapter's training and held-out
questions (from the dataset stored with the adapter; a few general questions when it has none). The
reference is the base in transformers (fp32) with the peft adapter, greedy. Reported per question
set: the share of answers that are token-identical, and key-fact recall of both. The export passes
when its recall trails the reference's by at most 10 points in every set.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from assistant.engines import GenerationSettings
from assistant.prompts import StopScanner, get_format
from assistant.training.evaluate import Probe, is_correct, load_probes

MAX_PER_SET = 24  # questions per set at most: enough to see a difference, quick on 2 cores
FALLBACK_GENERAL = 8  # general questions asked when the adapter stores no dataset
SETTINGS = GenerationSettings(max_tokens=48, temperature=0.0)
TOLERANCE = 0.10  # an export may trail the peft model's recall by at most 10 points
VERIFY_TIMEOUT_S = 1800  # the whole verification, both models loaded


# the parent: run the child -----------------------------------------------------------------------

def run_verification(base, adapter, fmt: str, export_dir: Path, files: list[str],
                     timeout_s: float = VERIFY_TIMEOUT_S) -> dict:
    """Run this module as a child on the staged export: its JSON result, or a failed one saying why."""
    spec = {"format": fmt, "export_dir": str(export_dir), "files": files,
            "base_hf_dir": str(base.ensure_hf_dir(progress=False)),
            "base_gguf": str(base.gguf_path) if base.gguf_path else None,
            "adapter": {"name": adapter.name, "version": adapter.version, "path": str(adapter.path),
                        "prompt_format": adapter.prompt_format, "manifest": adapter.manifest}}
    with tempfile.TemporaryDirectory(prefix="verify-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "assistant.export_verify", "--spec", str(spec_path), "--out", str(out_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        except subprocess.TimeoutExpired:
            return {"passed": False, "error": f"verification did not finish within {timeout_s:.0f} s"}
        if proc.returncode != 0 or not out_path.is_file():
            lines = [line for line in (proc.stderr or "").strip().splitlines() if line.strip()]
            return {"passed": False, "error": f"verification crashed: {lines[-1] if lines else f'exit {proc.returncode}'}"}
        return json.loads(out_path.read_text())


# the child: ask both models, compare ------------------------------------------------------------

def question_sets(adapter: dict) -> dict[str, list[Probe]]:
    """{"train": [...], "heldout": [...]} from the adapter's stored dataset, or {"general": [...]}."""
    from assistant.data import load_qa_file

    stored = (adapter.get("manifest") or {}).get("dataset", {}).get("stored_as")
    path = Path(adapter["path"]) / stored if stored else None
    if path is not None and path.is_file():
        report = load_qa_file(path)
        sets = {"train": [Probe(r.question, r.answer, r.keywords) for r in report.train][:MAX_PER_SET],
                "heldout": [Probe(r.question, r.answer, r.keywords) for r in report.test][:MAX_PER_SET]}
        return {k: v for k, v in sets.items() if v}
    return {"general": load_probes()[:FALLBACK_GENERAL]}


def answer(engine, fmt, question: str, adapter) -> tuple[list[int], str]:
    """Greedy token ids up to the format's stop, and the answer text a user would see."""
    prompt = fmt.render([{"role": "user", "content": question}])
    scanner = StopScanner(fmt.stop_strings)
    ids: list[int] = []
    for token in engine.generate_ids(engine.tokenize(prompt), adapter, SETTINGS):
        if token in fmt.stop_token_ids:
            break
        ids.append(token)
        scanner.feed(engine.detokenize(ids).lstrip())
        if scanner.stopped:
            break
    text = engine.detokenize(ids).strip()
    for stop in fmt.stop_strings:
        text = text.split(stop)[0] if stop in text else text
    return ids, text.strip()


def run_set(engine, fmt, probes: list[Probe], adapter) -> list[dict]:
    out = []
    for probe in probes:
        ids, text = answer(engine, fmt, probe.question, adapter)
        out.append({"question": probe.question, "ids": ids, "answer": text, "correct": is_correct(text, probe)})
    return out


def reference_answers(spec: dict, sets: dict, fmt) -> dict:
    from assistant.engines.hf import HFEngine
    from assistant.registry import Adapter

    a = spec["adapter"]
    adapter = Adapter(name=a["name"], version=a["version"], path=Path(a["path"]), source="export",
                      manifest={"prompt_format": a["prompt_format"]})
    engine = HFEngine(Path(spec["base_hf_dir"]), prompt_format=a["prompt_format"], quant="fp32")
    return {name: run_set(engine, fmt, probes, adapter) for name, probes in sets.items()}


def export_answers(spec: dict, sets: dict, fmt) -> dict:
    export_dir, files, kind = Path(spec["export_dir"]), spec["files"], spec["format"]
    adapter = None
    if kind == "hf":
        from assistant.engines.hf import HFEngine

        engine = HFEngine(export_dir, prompt_format=fmt.name, quant="fp32")
    else:
        from assistant.engines.llamacpp import LlamaCppEngine

        if kind == "lora-gguf":
            base_gguf = export_dir / files[1] if len(files) > 1 else Path(spec["base_gguf"])
            engine = LlamaCppEngine(base_gguf, prompt_format=fmt.name)
            adapter = SimpleNamespace(key="export", name="export", gguf_path=export_dir / files[0],
                                      prompt_format=fmt.name)
        else:
            engine = LlamaCppEngine(export_dir / files[0], prompt_format=fmt.name)
    return {name: run_set(engine, fmt, probes, adapter) for name, probes in sets.items()}


def compare(reference: dict, exported: dict) -> dict:
    """Per set: token-identical share, recall of both; passed when no recall trails by > 10 points."""
    rows, passed = [], True
    for name, ref in reference.items():
        exp = exported[name]
        n = len(ref)
        same = sum(r["ids"] == e["ids"] for r, e in zip(ref, exp, strict=True)) / n
        ref_recall = sum(r["correct"] for r in ref) / n
        exp_recall = sum(e["correct"] for e in exp) / n
        ok = exp_recall >= ref_recall - TOLERANCE - 1e-9
        passed &= ok
        rows.append({"set": name, "questions": n, "token_identical": same, "reference_recall": ref_recall,
                     "export_recall": exp_recall, "passed": ok,
                     "examples": [{"question": r["question"], "reference": r["answer"], "export": e["answer"]}
                                  for r, e in zip(ref, exp, strict=True)][:5]})
    return {"passed": passed, "tolerance": TOLERANCE, "sets": rows,
            "method": "greedy answers of the export vs the base + peft adapter in transformers (fp32)"}


def verify(spec: dict) -> dict:
    fmt = get_format(spec["adapter"]["prompt_format"])
    sets = question_sets(spec["adapter"])
    exported = export_answers(spec, sets, fmt)  # first: an export that does not load fails fast
    reference = reference_answers(spec, sets, fmt)
    return compare(reference, exported)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    try:
        result = verify(spec)
    except Exception as exc:  # reported to the exporter as a failed verification, in one line
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
