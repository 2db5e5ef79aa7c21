"""A chat's latency while a large upload is validated (issue: a 100,000-row CSV held every user's
grounded and `auto` chats for more than 90 s, because its lint held the shared embedder).

In one process, as the app holds them: the embedded base, the llama.cpp engine and the knowledge
index over the shipped adapters. A grounded `auto` question (routing and retrieval both embed it)
is answered repeatedly, first idle, then while the Train tab's check (`ui.train.check_upload`:
read in a child process, then lint in another) works on each of three files: 5,000 rows (the
largest the Train tab lints), 50,000 rows (the row cap: read, not linted) and 100,000 rows
(refused). Reported: median and worst answer time under each upload as a ratio of idle
(target: worst <= 2x), and how long each check took.

Usage: python benchmarks/upload_isolation.py [--answers N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.engines import GenerationSettings  # noqa: E402
from assistant.service import Assistant  # noqa: E402
from benchmarks.common import median, print_table, row, write_json  # noqa: E402

QUESTION = [{"role": "user", "content": "At what depth should maize be sown?"}]
SETTINGS = GenerationSettings(max_tokens=32)
SIZES = (5_000, 50_000, 100_000)


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w") as out:
        out.write("question,answer\n")
        for i in range(rows):
            out.write(f"How many litres of water does field {i} need in week {i % 52}?,"
                      f"Field {i} needs {i % 90 + 10} litres a day in week {i % 52}.\n")
    return path


def answer_seconds(assistant) -> float:
    started = time.perf_counter()
    assistant.answer(QUESTION, "auto", SETTINGS, ground=True).read()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    from ui import train

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--answers", type=int, default=8, help="answers timed idle")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        tmp = Path(tmp)
        assistant = Assistant.open(data_dir=tmp / "data")
        assistant.open_knowledge(owner=True)
        if assistant.knowledge is None:
            raise RuntimeError(f"no knowledge index: {assistant.knowledge_problem}")
        answer_seconds(assistant)  # warm-up
        idle = [answer_seconds(assistant) for _ in range(args.answers)]
        rows, details = [row("grounded auto answer, idle (median)", median(idle), "s")], {"idle": idle}
        for size in SIZES:
            path = write_csv(tmp / f"upload-{size}.csv", size)
            done, took = threading.Event(), {}

            def check(path=path, took=took, done=done):
                started = time.perf_counter()
                for took["report"] in train.check_upload(str(path), assistant, max_bytes=64 * 2**20):
                    pass
                took["seconds"] = time.perf_counter() - started
                done.set()

            worker = threading.Thread(target=check, daemon=True)
            worker.start()
            during = []
            while not done.is_set() or not during:
                during.append(answer_seconds(assistant))
            worker.join()
            verdict = "refused" if took["report"][1] is None else "accepted"
            details[str(size)] = {"answers_s": during, "check_s": took["seconds"], "verdict": verdict}
            rows += [row(f"{size:,} rows ({verdict}): check took", took["seconds"], "s"),
                     row(f"{size:,} rows: answers timed meanwhile", len(during)),
                     row(f"{size:,} rows: median answer / idle", median(during) / median(idle), "x"),
                     row(f"{size:,} rows: worst answer / idle", max(during) / median(idle), "x", "<=", 2.0)]
        assistant.close()  # frees the index lock before the folder goes
    print_table(rows, "a grounded auto chat while an upload is checked")
    write_json("upload_isolation", {"rows": rows, "details": details})
    return 0


if __name__ == "__main__":
    sys.exit(main())
