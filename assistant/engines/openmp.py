"""How llama.cpp's OpenMP threads wait: briefly spin, then sleep, so decoding shares the CPU.

The llama.cpp CPU backend in the compiled wheel uses OpenMP (libgomp): at each of the few hundred
barriers of one decoded token, a thread that is done waits for the others. libgomp's default is to
spin for about 300,000 iterations (milliseconds) before it sleeps. On an idle machine the partner
arrives within microseconds and spinning is what makes decoding fast; beside another busy program
the partner is often descheduled, and the waiting thread spins away its whole time slice, so
decoding collapsed to 16-34% of its idle speed beside two co-tenants (fair would be ~50%).

GOMP_SPINCOUNT bounds the spin: long enough for a partner that is running, short enough that a
thread waiting for a descheduled one sleeps and gives its core back (values measured in
benchmarks/cpu_sharing.py). libgomp reads it once, when it loads (at `import llama_cpp`), so this
runs when the engine module is imported, before any llama_cpp import. A value already in the
environment wins; ASSISTANT_OMP_DEFAULTS=1 keeps libgomp's defaults (the benchmark's baseline).
"""

from __future__ import annotations

import os
import sys

SPIN_COUNT = "10000"  # iterations (~0.1-0.4 ms on these cores) before a waiting thread sleeps


def configure() -> None:
    if os.environ.get("ASSISTANT_OMP_DEFAULTS") or "OMP_WAIT_POLICY" in os.environ:
        return
    if "llama_cpp" in sys.modules:  # too late for this process: libgomp has read its settings
        return
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
