"""Load test: 8 simulated farmers x 10 questions each through the app's HTTP API (gradio_client).

Each user is its own Gradio session on its own adapter (the shipped ones plus renamed copies of
xylandia, so that eight adapters are live at once), asking its questions one after another like a
person would, all eight at the same time. Run twice against the same app: once idle, once while a
training job runs in the app's background worker. Must hold: 0 failed requests and every answer
labelled with the adapter its session chose. Prints p50/p95 time to first token and tokens/s for
both runs; target: p95 TTFT under training <= 3x idle.

The app is served in this process on the embedded base with a temporary data directory, exactly as
`assistant serve` builds it; nothing outside that directory is written.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import environment, print_table, row, write_json  # noqa: E402

QUESTIONS = ["What is the capital of Xylandia?", "How deep should maize seed be planted?",
             "What is the capital of France?", "When should wheat be harvested?",
             "What soil pH suits potatoes?", "Who wrote Hamlet?", "How often should tomatoes be watered?",
             "What is the currency of Xylandia?", "How do I control aphids on beans?", "What do bees make?"]


def make_data_dir(tmp: Path, users: int) -> list[str]:
    """Adapters for `users` sessions: the shipped ones, then copies of xylandia under new names."""
    from assistant.paths import SHIPPED_ADAPTERS

    shipped = sorted(p.name for p in SHIPPED_ADAPTERS.iterdir() if (p / "manifest.json").is_file())
    names = list(shipped)
    for i in range(users - len(shipped)):
        name = f"field-{i + 1}"
        target = tmp / "adapters" / name / "v1"
        shutil.copytree(SHIPPED_ADAPTERS / "xylandia", target)
        manifest = json.loads((target / "manifest.json").read_text())
        manifest.update(name=name, version=1)
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2))
        names.append(name)
    return names[:users]


def user(url: str, adapter: str, questions: list[str], out: list[dict]) -> None:
    """One farmer: a session of its own, asking its questions in turn, streaming each answer."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    for question in questions:
        started, first, last, text, error = time.perf_counter(), None, None, "", None
        try:
            job = client.submit(question, [], adapter, 128, 0.0, False, api_name="/respond")
            for update in job:
                chatbot = update[0]
                content = chatbot[-1]["content"] if chatbot else ""
                if not isinstance(content, str):  # Gradio 6: a list of typed parts
                    content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
                if first is None and content.strip(" ▌") and not content.startswith("⚠️"):
                    first = time.perf_counter()
                text, last = content, time.perf_counter()
            job.result()
        except Exception as exc:  # any failure is a failed request, counted, never fatal to the run
            error = f"{type(exc).__name__}: {exc}"
        out.append({"adapter": adapter, "question": question, "started": started, "first": first, "last": last,
                    "text": text, "error": error})


def run_users(url: str, adapters: list[str], per_user: int) -> tuple[list[dict], float]:
    results: list[dict] = []
    threads = [threading.Thread(target=user, args=(url, name, [QUESTIONS[(i + k) % len(QUESTIONS)]
                                                                for k in range(per_user)], results))
               for i, name in enumerate(adapters)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - started


def summarise(label: str, results: list[dict], wall: float, tokenize) -> tuple[list, dict]:
    failed = [r for r in results if r["error"] or r["first"] is None or r["text"].startswith("⚠️")]
    wrong = [r for r in results if not r["error"] and f"— {r['adapter']} v" not in r["text"]]
    ttft = sorted(r["first"] - r["started"] for r in results if r["first"] is not None)
    rates = []
    for r in results:
        if r["first"] is not None and r["last"] and r["last"] > r["first"]:
            answer = r["text"].split("\n\n<sub>", 1)[0]
            rates.append(max(0, len(tokenize(answer)) - 1) / (r["last"] - r["first"]))
    stats = {"requests": len(results), "failed": len(failed), "wrong_adapter": len(wrong),
             "ttft_p50": _pct(ttft, 50), "ttft_p95": _pct(ttft, 95),
             "tok_s_p50": _pct(sorted(rates), 50), "wall_s": wall,
             "failures": [r["error"] or r["text"][:120] for r in failed][:5]}
    rows = [row(f"{label}: requests", len(results)),
            row(f"{label}: failed requests", len(failed), "", "==", 0),
            row(f"{label}: answers from another adapter", len(wrong), "", "==", 0),
            row(f"{label}: TTFT p50", stats["ttft_p50"], "s"), row(f"{label}: TTFT p95", stats["ttft_p95"], "s"),
            row(f"{label}: tokens/s per stream p50", stats["tok_s_p50"], "tok/s"),
            row(f"{label}: wall time", wall, "s")]
    return rows, stats


def _pct(values: list[float], q: int) -> float | None:
    if not values:
        return None
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--port", type=int, default=7871)
    args = parser.parse_args(argv)

    from assistant.jobs import JobManager
    from assistant.service import Assistant
    from ui.app import build, queued

    with tempfile.TemporaryDirectory() as tmp:
        adapters = make_data_dir(Path(tmp), args.users)
        assistant = Assistant.open(data_dir=Path(tmp))
        jobs = JobManager(None, Path(tmp), engine=assistant.engine.name,
                          on_busy=getattr(assistant.engine, "yield_cores", None))
        demo = queued(build(assistant, jobs))  # the queue as served
        demo.launch(server_name="127.0.0.1", server_port=args.port, prevent_thread_lock=True, quiet=True)
        url = f"http://127.0.0.1:{args.port}/"
        tokenize = assistant.engine.tokenize
        try:
            print(f"{args.users} users x {args.questions} questions, idle…", flush=True)
            idle_rows, idle = summarise("idle", *run_users(url, adapters, args.questions), tokenize)
            data = ROOT / "datasets" / "agriculture" / "agriculture.jsonl"
            job = jobs.start(data, "load-test-training", "fast", {})
            while not job.finished and job.last.get("phase") != "train":  # load during the heavy part
                time.sleep(0.5)
            print("…and while a training job runs", flush=True)
            busy_rows, busy = summarise("training", *run_users(url, adapters, args.questions), tokenize)
            still_training = not job.finished
            jobs.cancel()
            while not job.finished:
                time.sleep(0.5)
        finally:
            demo.close()
    ratio = busy["ttft_p95"] / idle["ttft_p95"] if idle["ttft_p95"] and busy["ttft_p95"] else None
    rows = idle_rows + busy_rows + [
        row("training ran for the whole second run", still_training, "", "==", True),
        row("TTFT p95, training / idle", ratio, "x", "<=", 3.0),
        row("engine slots (chats decoding at once)", getattr(assistant.engine, "slots", 1))]
    print_table(rows, "Load: 8 farmers at once, idle and under training")
    write_json("load", {"environment": environment(), "idle": idle, "training": busy, "rows": rows})
    return 0 if all(r.status != "MISSED" and r.status != "ERROR" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
