"""Helpers shared by the benchmarks: timing streams, peak memory, how busy the machine was,
isolated child runs, the results table and JSON.

Every measure becomes a `Row`: a value, its unit and, where the issue tracker sets one, a target.
A row with a target reads PASS or MISSED; a row whose measurement failed carries the error text and
reads ERROR; a row without a target is context for the others.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, is_dataclass
from importlib import metadata
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BUSY = "other processes' CPU share"
_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq}


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (10^6 bytes); ru_maxrss is KiB on Linux."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall s, this process's CPU s, all CPUs' busy s from /proc/stat), for `others_cpu_share`."""
    ticks = [int(x) for x in (_read("/proc/stat").split("\n", 1)[0].split()[1:9] or [0] * 8)]
    busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    return time.perf_counter(), time.process_time(), busy


def others_cpu_share(before: tuple, after: tuple) -> float:
    """Share of the machine's CPUs used by other processes between two snapshots (0 = idle machine).

    Our own CPU share cannot tell: llama.cpp's threads spin while they wait, so it reads ~100% even
    when another process halves the throughput.
    """
    wall, own, busy = (a - b for a, b in zip(after, before, strict=True))
    return max(0.0, (busy - own) / (max(wall, 1e-9) * (os.cpu_count() or 1)))


def with_load(section, *args) -> list:
    """A section's rows plus how much CPU other processes took meanwhile (0 = the machine was ours)."""
    before = cpu_snapshot()
    rows = section(*args)
    after = cpu_snapshot()
    return rows + [row(BUSY, others_cpu_share(before, after)), row("section wall time", after[0] - before[0], "s")]


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


@dataclass
class Run:
    ttft_ms: float | None  # call to first item
    decode_tps: float | None  # items after the first / time after the first
    items: list


def timed(start, limit: int, deadline_s: float = 15.0) -> Run:
    """Consume up to `limit` items from the iterator `start()` returns; the clock starts before the call.

    A run stops at `deadline_s` with what it has: when another process competes for the cores,
    llama.cpp's spinning threads can slow down a hundredfold, and the benchmark must still end.
    """
    t0 = time.perf_counter()
    stream = start()
    items, first = [], None
    try:
        for item in stream:
            if first is None:
                first = time.perf_counter()
            items.append(item)
            if len(items) >= limit or time.perf_counter() - t0 > deadline_s:
                break
        end = time.perf_counter()
    finally:
        getattr(stream, "close", lambda: None)()  # now, not at GC: our engines' generators hold a lock
    if first is None:
        return Run(None, None, items)
    tps = (len(items) - 1) / (end - first) if len(items) > 1 else None
    return Run((first - t0) * 1e3, tps, items)


@dataclass
class Row:
    measure: str
    value: float | int | bool | str | None
    unit: str = ""
    target: str = ""  # e.g. ">= 0.9"; empty when the row is context only
    status: str = "-"  # PASS, MISSED, ERROR or "-"


def row(measure: str, value, unit: str = "", op: str | None = None, limit=None) -> Row:
    """A table row; with op and limit it is checked against its target."""
    if isinstance(value, str) and value.startswith("error:"):
        return Row(measure, value, unit, f"{op} {limit}" if op else "", "ERROR")
    if op is None:
        return Row(measure, value, unit)
    ok = value is not None and _OPS[op](value, limit)
    return Row(measure, value, unit, f"{op} {limit}{' ' + unit if unit and op != '==' else ''}",
               "PASS" if ok else "MISSED")


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return "n/a" if value is None else str(value)


def print_table(rows: list[Row], title: str = "") -> None:
    cells = [("measure", "value", "target", "result")]
    cells += [(r.measure, f"{_fmt(r.value)} {r.unit}".strip(), r.target, r.status) for r in rows]
    widths = [min(max(len(c[i]) for c in cells), 72) for i in range(4)]
    if title:
        print(f"\n{title}")
    for i, line in enumerate(cells):
        print("  ".join(text[:72].ljust(w) for text, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def environment() -> dict:
    """What the numbers were measured on; load average says whether something else was running."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor())
    versions = {}
    for pkg in ("llama_cpp_python", "torch", "transformers", "peft", "bitsandbytes"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"python": platform.python_version(), "cpu": cpu, "cpus": len(os.sched_getaffinity(0)),
            "loadavg_1m": round(os.getloadavg()[0], 2), "packages": versions}


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def run_child(script: Path, args: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run `python script *args` in a fresh process and parse the JSON on its last stdout line.

    A fresh process per measurement keeps one run's memory and warm caches out of another's. A
    failure comes back as {"error": ...} so one broken configuration never ends the benchmark.
    """
    try:
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except ValueError:
            pass
    errors = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    return {"error": (errors[-1] if errors else f"exit code {proc.returncode}")[:300]}


def _jsonable(obj):
    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else str(obj)


def write_json(name: str, data: dict) -> Path:
    """benchmarks/results/<name>.json (git-ignored); Rows and other dataclasses become objects."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")
    return path
