"""Training and export jobs in a separate, lower-priority process, watched from the app.

A job is `assistant train|export ... --progress-json` run as a child process with a higher nice
value, so chats in the app keep streaming while it works and a crash in it cannot take the app down.
The child prints one JSON object per progress event; the last one is the result or the error.
Cancelling sends SIGTERM: the child stops at the next step and publishes nothing. One job runs at a
time (each wants every spare core); the others wait in line, first come first served, and can be
cancelled while they wait. A page reload finds the running job through the manager.
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
    kind: str = "train"  # train | next (version) | export
    started: float = field(default_factory=time.time)
    events: list[dict] = field(default_factory=list)  # progress events, in order
    state: str = "queued"  # queued | running | done | failed | cancelled
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
        return self.state not in ("queued", "running")


class JobManager:
    """Runs training and export jobs one at a time, queues the rest, keeps their progress."""

    def __init__(self, base_spec: str | None, data_dir: Path, engine: str = "llamacpp", on_busy=None,
                 max_file_mb: int = 20):
        self.base_spec, self.data_dir, self.engine = base_spec, Path(data_dir), engine
        self.max_file_mb = int(max_file_mb)  # the app's upload cap: what it accepted, the job reads
        self.on_busy = on_busy or (lambda busy: None)  # told when a job starts and ends (to share cores)
        self.current: Job | None = None  # the running job, or the last one that ran
        self.waiting: deque[Job] = deque()
        self.jobs: list[Job] = []  # every job this app started, oldest first
        self._lock = threading.Lock()
        self._counter = 0

    def start(self, data_file: Path, name: str, preset: str, overrides: dict, description: str = "",
              answer_policy: str | None = None) -> Job:
        """Queue a training job (it starts at once when nothing else runs)."""
        return self._submit("train", name, self.train_args(data_file, name, preset, overrides, description,
                                                           answer_policy))

    def train_args(self, data_file: Path, name: str, preset: str, overrides: dict, description: str = "",
                   answer_policy: str | None = None) -> list[str]:
        """The `assistant train` arguments of a job."""
        args = ["train", "--data", str(data_file), "--name", name, "--preset", preset,
                "--description", description, "--max-file-mb", str(self.max_file_mb)]
        if answer_policy:
            args += ["--answer-policy", answer_policy]
        for key, value in overrides.items():
            value = ",".join(value) if isinstance(value, list | tuple) else value
            args += ["--set", f"{key}={value}"]
        return args

    def next_version(self, name: str, by: str = "", pairs_file: Path | None = None) -> Job:
        """Queue the next version of an adapter (`assistant adapters next`): trained from the serving
        version and the answered questions, gated, promoted only if nothing regresses."""
        args = ["adapters", "next", name, "--by", by] + (["--pairs", str(pairs_file)] if pairs_file else [])
        return self._submit("next", name, args)

    def export(self, adapter: str, fmt: str, out: Path | None = None) -> Job:
        """Queue an export job: `assistant export`, verification included, in the worker process."""
        command = ["export", "--adapter", adapter, "--format", fmt] + (["--out", str(out)] if out else [])
        return self._submit("export", adapter, command)

    def latest(self, kind: str) -> Job | None:
        """The newest job of a kind (queued, running or finished): what a tab shows after a reload."""
        return next((job for job in reversed(self.jobs) if job.kind == kind), None)

    def position(self, job: Job) -> int:
        """1 for the next job to run, 2 after that...; 0 when it is not waiting."""
        with self._lock:
            return next((i + 1 for i, queued in enumerate(self.waiting) if queued is job), 0)

    def _submit(self, kind: str, name: str, args: list[str]) -> Job:
        with self._lock:
            self._counter += 1
            command = [sys.executable, "-m", "assistant", *args, "--progress-json", "--data-dir", str(self.data_dir),
                       "--engine", self.engine] + (["--base", self.base_spec] if self.base_spec else [])
            job = Job(id=f"job-{self._counter}", name=name, command=command, kind=kind)
            self.jobs.append(job)
            if self.current is None or self.current.finished:
                self._launch(job)
            else:
                self.waiting.append(job)
            return job

    def _launch(self, job: Job) -> None:
        """Start `job` (the lock is held)."""
        # The job gets one thread fewer than the machine has cores, the chats keep the rest.
        threads = str(max(1, len(os.sched_getaffinity(0)) - 1))
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ASSISTANT_TRAIN_THREADS": threads,
               "OMP_NUM_THREADS": threads}
        job.state, job.started = "running", time.time()
        self.current = job
        try:
            job.process = subprocess.Popen(job.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                           preexec_fn=_lower_priority, env=env)
        except OSError as exc:
            job.state, job.error = "failed", f"could not start the worker process: {exc}"
            return
        self.on_busy(True)
        threading.Thread(target=self._watch, args=(job,), daemon=True).start()

    def _next(self) -> None:
        with self._lock:
            while self.waiting and (self.current is None or self.current.finished):
                self._launch(self.waiting.popleft())

    def cancel(self, job: Job | None = None, kind: str | None = None) -> bool:
        """Cancel `job` (default: the newest unfinished job of `kind`, or the running one)."""
        with self._lock:
            if job is None:
                candidates = [j for j in reversed(self.jobs) if not j.finished and (kind is None or j.kind == kind)]
                job = candidates[0] if candidates else None
            if job is None or job.finished:
                return False
            if job.state == "queued":
                self.waiting.remove(job)
                job.state, job.error = "cancelled", "cancelled before it started"
                return True
        if job.process is None:
            return False
        job.process.send_signal(signal.SIGTERM)
        return True

    def shutdown(self, timeout: float = 8.0) -> None:
        """Stop every job with the app: the waiting ones never start, the running one is sent SIGTERM
        (it stops at its next step and publishes nothing) and killed if it has not ended by `timeout`.
        A job killed while staging leaves only a staging folder, which is never listed and is swept
        at the next start."""
        with self._lock:
            for job in self.waiting:
                job.state, job.error = "cancelled", "the app stopped before it started"
            self.waiting.clear()
            running = self.current if self.current is not None and not self.current.finished else None
        if running is None or running.process is None:
            return
        running.process.send_signal(signal.SIGTERM)
        try:
            running.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            running.process.kill()
            running.process.wait()

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
            what, product = ("training", "adapter") if job.kind in ("train", "next") else (job.kind, job.kind)
            job.error = (f"the {what} process was killed ({_signal_name(-code)}), perhaps for lack of memory; "
                         f"no partial {product} is listed, and you can start it again")
        else:
            job.state = "failed"
            job.error = job.error or _last_line(stderr) or f"the {job.kind} job stopped unexpectedly (exit code {code})"
        self._next()


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
