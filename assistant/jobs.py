"""Training jobs in a separate, lower-priority process, watched from the app.

A job is `assistant train ... --progress-json` run as a child process with a higher nice value, so
chats in the app keep streaming while it trains and a crash in training cannot take the app down.
The child prints one JSON object per progress event; the last one is the result or the error.
Cancelling sends SIGTERM: the child stops at the next step and publishes nothing. One job runs at a
time; a page reload finds the running job through the manager.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

TRAINING_NICENESS = 10


@dataclass
class Job:
    """What the UI shows of one training run."""

    id: str
    name: str
    command: list[str]
    started: float = field(default_factory=time.time)
    events: list[dict] = field(default_factory=list)  # progress events, in order
    state: str = "running"  # running | done | failed | cancelled
    result: dict | None = None  # the final JSON (adapter, report card) when done
    error: str | None = None
    process: subprocess.Popen | None = None

    @property
    def last(self) -> dict:
        return self.events[-1] if self.events else {"phase": "prepare", "message": "starting"}

    @property
    def losses(self) -> list[tuple[int, float]]:
        return [(e["step"], e["loss"]) for e in self.events if e.get("phase") == "train" and e.get("loss") is not None]

    @property
    def finished(self) -> bool:
        return self.state != "running"


class JobManager:
    """Starts training jobs one at a time and keeps their progress for whoever asks."""

    def __init__(self, base_spec: str | None, data_dir: Path, engine: str = "llamacpp", on_busy=None):
        self.base_spec, self.data_dir, self.engine = base_spec, Path(data_dir), engine
        self.on_busy = on_busy or (lambda busy: None)  # told when a job starts and ends (to share cores)
        self.current: Job | None = None
        self._lock = threading.Lock()
        self._counter = 0

    def start(self, data_file: Path, name: str, preset: str, overrides: dict, description: str = "") -> Job:
        with self._lock:
            if self.current is not None and not self.current.finished:
                raise RuntimeError(f"a training job for '{self.current.name}' is already running; "
                                   "wait for it or cancel it first")
            self._counter += 1
            command = [sys.executable, "-m", "assistant", "train", "--progress-json", "--data", str(data_file),
                       "--name", name, "--preset", preset, "--data-dir", str(self.data_dir),
                       "--engine", self.engine, "--description", description]
            if self.base_spec:
                command += ["--base", self.base_spec]
            for key, value in overrides.items():
                value = ",".join(value) if isinstance(value, list | tuple) else value
                command += ["--set", f"{key}={value}"]
            job = Job(id=f"job-{self._counter}", name=name, command=command)
            # The job gets one thread fewer than the machine has cores, the chats keep the rest.
            threads = str(max(1, len(os.sched_getaffinity(0)) - 1))
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "ASSISTANT_TRAIN_THREADS": threads}
            job.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           preexec_fn=_lower_priority, env=env)
            self.on_busy(True)
            threading.Thread(target=self._watch, args=(job,), daemon=True).start()
            self.current = job
            return job

    def cancel(self) -> bool:
        job = self.current
        if job is None or job.finished or job.process is None:
            return False
        job.process.send_signal(signal.SIGTERM)
        return True

    def _watch(self, job: Job) -> None:
        assert job.process is not None and job.process.stdout is not None
        # Drain stderr as it comes: a child blocked on a full stderr pipe would never finish stdout.
        stderr_tail: deque[str] = deque(maxlen=200)
        drain = threading.Thread(target=stderr_tail.extend, args=(job.process.stderr or (),), daemon=True)
        drain.start()
        for line in job.process.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("phase") == "result":
                job.result = event
            elif event.get("phase") == "error":
                job.error = event.get("message")
            else:
                job.events.append(event)
        code = job.process.wait()
        self.on_busy(False)
        drain.join(timeout=5)
        stderr = "".join(stderr_tail)
        if job.result is not None and code == 0:
            job.state = "done"
        elif code in (-signal.SIGTERM, 143) or (job.error or "").startswith("training cancelled"):
            job.state, job.error = "cancelled", "cancelled; nothing was published"
        elif code < 0:  # killed by a signal (SIGKILL from the OOM killer, say): stderr says nothing useful
            job.state = "failed"
            job.error = (f"the training process was killed ({_signal_name(-code)}), perhaps for lack of memory; "
                         "no partial adapter is listed, and you can start it again")
        else:
            job.state = "failed"
            job.error = job.error or _last_line(stderr) or f"training stopped unexpectedly (exit code {code})"


def _lower_priority() -> None:
    os.nice(TRAINING_NICENESS)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and "kv_cache" not in line]
    return lines[-1][:500] if lines else ""
