"""Export benchmark: the shipped xylandia adapter on the embedded 270M base, every format.

Each export runs as `assistant export ... --no-verify` in a child process of its own, so its wall
time and peak RSS (from os.wait4's resource usage of that child) are the export's alone. Then one
gguf-q4_k_m export with verification gives the verification's cost and verdict. Targets (issue 4):
gguf-q4_k_m in <= 60 s with peak RSS <= 2.5 GB. Prints a table, writes benchmarks/results/export.json.
The base's HF copy is prepared first, so its one-time conversion is not counted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.base import resolve_base  # noqa: E402
from assistant.export import FORMATS  # noqa: E402
from benchmarks.common import environment, print_table, row, with_load, write_json  # noqa: E402

ADAPTER = "xylandia"


def run_export(fmt: str, out: Path, verify: bool) -> dict:
    """(seconds, peak RSS MB, size MB, export.json) of one export in a fresh child process."""
    cmd = [sys.executable, "-m", "assistant", "export", "--adapter", ADAPTER, "--format", fmt, "--out", str(out),
           "--data-dir", str(out / "data"), "--json"] + ([] if verify else ["--no-verify"])
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, text=True, cwd=ROOT)
        # wait4: this child's own resource usage (its peak RSS), not the maximum over every child so far
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0), stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    if proc.returncode not in (0, 1) or not out_text.strip():
        lines = [line for line in err_text.strip().splitlines() if line.strip()]
        return {"error": "error: " + (lines[-1] if lines else f"exit {proc.returncode}")[:200]}
    info = json.loads(out_text)
    target = out / f"{ADAPTER}-v{info['adapter']['version']}-{fmt}"
    size = sum((target / name).stat().st_size for name in info["model_files"]) / 1e6
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss * 1024 / 1e6, "size_mb": size, "info": info}


def section(out: Path) -> tuple[list, dict]:
    rows, details = [], {}
    for fmt in FORMATS:
        result = run_export(fmt, out, verify=False)
        details[fmt] = {k: v for k, v in result.items() if k != "info"}
        if "error" in result:
            rows.append(row(f"{fmt}: export", result["error"]))
            continue
        limit_s, limit_mb = (60, 2500) if fmt == "gguf-q4_k_m" else (None, None)
        rows.append(row(f"{fmt}: time", result["seconds"], "s", "<=" if limit_s else None, limit_s))
        rows.append(row(f"{fmt}: peak RSS", result["peak_rss_mb"], "MB",
                        "<=" if limit_mb else None, limit_mb))
        rows.append(row(f"{fmt}: size", result["size_mb"], "MB"))
    verified = run_export("gguf-q4_k_m", out, verify=True)
    if "error" in verified:
        rows.append(row("gguf-q4_k_m with verification", verified["error"]))
    else:
        v = verified["info"]["verification"] or {}
        details["gguf-q4_k_m+verify"] = {"seconds": verified["seconds"], "verification": v}
        rows.append(row("gguf-q4_k_m: export + verification time", verified["seconds"], "s"))
        rows.append(row("gguf-q4_k_m: verification passed", bool(v.get("passed")), "", "==", True))
        for s in v.get("sets", []):
            rows.append(row(f"  {s['set']}: token-identical share", s["token_identical"]))
            rows.append(row(f"  {s['set']}: recall peft / export",
                            f"{s['reference_recall']:.0%} / {s['export_recall']:.0%}"))
    return rows, details


def main() -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    resolve_base().ensure_hf_dir(progress=False)  # the one-time conversion is not part of an export
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        holder: dict = {}

        def measured():
            rows, details = section(Path(tmp))
            holder["details"] = details
            return rows

        rows = with_load(measured)
    print_table(rows, f"Export of '{ADAPTER}' from the embedded Gemma 3 270M (each export in its own process)")
    path = write_json("export", {"environment": environment(), "rows": rows, "details": holder.get("details")})
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
