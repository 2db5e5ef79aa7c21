"""The app-owned `llama-server` process: started with the base and every adapter, kept alive, stopped.

llama.cpp's server decodes its parallel slots in one batch (continuous batching), which the
in-process engine does not. It loads LoRA GGUFs only at start (`--lora FILE`, one per adapter, in
order: the n-th file is lora id n); a request picks its adapter with `"lora": [{"id": N, "scale":
1.0}]`, and every adapter it leaves out gets scale 0. (`--lora-init-without-apply` keeps them off
the warm-up; a request with no "lora" field at all would get every adapter at 1.0, so the engine,
engines.server, always names them.)
So this manager owns the adapter-key -> lora-id map, and a restart (after a crash) passes the same
files in the same order, keeping every id stable for requests in flight elsewhere.

The binary is built once by `make llama-server` (scripts/build_llama_server.sh) from the llama.cpp
vendored in the pinned llama-cpp-python, into the shared cache beside the compiled wheel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx

from assistant.engines import EngineError, openmp
from assistant.engines.llama_private import PINNED_VERSION
from assistant.paths import cpu_key, default_cache_dir

START_TIMEOUT_S = 60.0  # loading the 270M base takes ~1 s; a loaded machine may take much longer
STOP_GRACE_S = 5.0  # SIGTERM lets the server finish its current batch; then SIGKILL
WATCH_S = 0.25  # how often the watchdog looks at the process
MAX_RESTARTS = 5  # within RESTART_WINDOW_S: a server that keeps dying is broken, not unlucky
RESTART_WINDOW_S = 60.0


class ServerError(EngineError):
    """The llama-server process could not be started or kept running; the message says why."""


def default_binary() -> Path:
    """Where `make llama-server` puts the binary for this CPU ($LLAMA_SERVER_BIN overrides it)."""
    env = os.environ.get("LLAMA_SERVER_BIN")
    return Path(env) if env else default_cache_dir() / "bin" / cpu_key() / f"llama-server-{PINNED_VERSION}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the server may still lose it to a race: start() retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    """The server's environment: its OpenMP threads wait as the in-process engine's do (engines.openmp).

    Its ggml is built with OpenMP too, and libgomp's default long spin made it decode at ~1 token/s
    beside other busy programs on 2 cores.
    """
    env = dict(os.environ)
    if not (env.get("ASSISTANT_OMP_DEFAULTS") or "OMP_WAIT_POLICY" in env):
        env.setdefault("GOMP_SPINCOUNT", openmp.SPIN_COUNT)
    return env


class LlamaServer:
    """One llama-server process on a loopback port; `url` and `lora_ids` are what clients need."""

    def __init__(self, gguf_path: Path, adapters=(), *, binary: Path | None = None, parallel: int = 4,
                 n_ctx: int = 2048, threads: int | None = None, host: str = "127.0.0.1", port: int | None = None,
                 log_path: Path | None = None, start_timeout: float = START_TIMEOUT_S, extra_args: tuple = ()):
        self.gguf_path = Path(gguf_path)
        self.binary = Path(binary) if binary else default_binary()
        usable = [a for a in adapters if getattr(a, "usable", True)]
        # The order is the id: never re-sort or drop an entry after start, or ids would move.
        self.lora_ids: dict[str, int] = {a.key: i for i, a in enumerate(usable)}
        self.lora_paths: list[Path] = [Path(a.gguf_path) for a in usable]
        self.parallel, self.n_ctx, self.host = int(parallel), int(n_ctx), host
        self.threads = threads or max(1, len(os.sched_getaffinity(0)))
        self.port = port
        self._fixed_port = port is not None
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self._own_log = log_path is None
        self.log_path = Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
        self.restarts = 0  # after deaths
        self.reloads = 0  # to serve adapters published since it started
        self.failure: str | None = None  # set when the watchdog gave up; requests then fail with it
        self._proc: subprocess.Popen | None = None
        self._lock = threading.RLock()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._crashes: list[float] = []
        self._watchdog: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The exact command line (per-slot context: llama-server splits -c among its slots)."""
        cmd = [str(self.binary), "-m", str(self.gguf_path), "--host", self.host, "--port", str(self.port),
               "--parallel", str(self.parallel), "-c", str(self.n_ctx * self.parallel),
               "-t", str(self.threads), "-tb", str(self.threads), "--no-webui",
               # As the in-process engine computes, so greedy answers are the same token for
               # token: flash attention off, 512-token prompt batches, weights not repacked
               # (llama_private.load_model_without_repack), and a full-size sliding-window cache.
               # Without --swa-full the server checkpoints the context and evaluates the prompt in
               # two parts, whose other rounding changed the real base's answer to "What is the
               # capital of Xylandia?" at its 13th token.
               "--flash-attn", "off", "-b", "512", "-ub", "512", "--no-repack", "--swa-full",
               # Warnings and errors only: at its default it logs every request, and an app that
               # runs for months must not fill the disk (extra_args "-lv 3" brings the timings back).
               "--log-verbosity", "2"]
        if self.lora_paths:
            cmd.append("--lora-init-without-apply")  # loaded, applied only as requests ask
            for path in self.lora_paths:
                cmd += ["--lora", str(path)]
        return cmd + list(self.extra_args)

    # life cycle ---------------------------------------------------------------------------------
    def start(self) -> LlamaServer:
        """Start the server and wait until /health answers; ServerError saying why if it cannot."""
        self._check_inputs()
        self._stopping.clear()
        with self._lock:
            self._launch()
        if self._watchdog is None or not self._watchdog.is_alive():
            self._watchdog = threading.Thread(target=self._watch, name="llama-server-watchdog", daemon=True)
            self._watchdog.start()
        return self

    def _check_inputs(self) -> None:
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise ServerError(f"llama-server is not built (looked for {self.binary}); run `make llama-server` "
                              "once to build it from the pinned llama.cpp sources")
        for path in [self.gguf_path, *self.lora_paths]:
            if not path.is_file():
                raise ServerError(f"llama-server cannot start: {path} does not exist")
            if "," in str(path):  # llama-server splits --lora values at commas
                raise ServerError(f"llama-server cannot load {path}: its path contains a comma")

    def _launch(self) -> None:
        """Start the process and wait for health; a port lost to a race is replaced (unless one was asked for)."""
        problem = "llama-server did not start"
        for _attempt in range(3):
            if self.port is None:
                self.port = free_port(self.host)
            self._ready.clear()
            with open(self.log_path, "ab") as log:
                log.write(f"\n--- starting: {' '.join(self.command())}\n".encode())
                log.flush()
                # A session of its own: a Ctrl-C to the app reaches the app, which then stops this.
                self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, start_new_session=True, env=_env())
            problem = self._wait_healthy(self._proc)
            if problem is None:
                self._ready.set()
                return
            self._kill(self._proc)
            self._proc = None
            if "bind" not in problem or self._fixed_port or self._stopping.is_set():
                break
            self.port = None  # taken meanwhile by someone else: another free one
        raise ServerError(problem)

    def _wait_healthy(self, proc: subprocess.Popen) -> str | None:
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._stopping.is_set():
                    return "llama-server was stopped while starting"
                if proc.poll() is not None:
                    return f"llama-server exited with code {proc.returncode} while starting: {self._log_tail()}"
                try:
                    if client.get(f"{self.url}/health").status_code == 200:
                        return None
                except httpx.HTTPError:
                    pass  # not listening yet
                time.sleep(0.05)
        return f"llama-server did not become healthy within {self.start_timeout:.0f} s: {self._log_tail()}"

    def _log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").split("\n--- starting: ")[-1].splitlines()[1:]
        except OSError:
            return "(no log)"  # only this start's lines: an earlier run's errors would mislead
        # The most telling lines: errors first, else the last few (its log is chatty).
        errors = [ln for ln in text if "error" in ln.lower() or "failed" in ln.lower() or "bind" in ln.lower()]
        return " | ".join((errors or text)[-lines:]).strip() + f" (log: {self.log_path})"

    def _watch(self) -> None:
        """Restart the server when it dies (same files, same order, so the same lora ids)."""
        while not self._stopping.wait(WATCH_S):
            with self._lock:
                proc = self._proc
                if proc is None or proc.poll() is None or self._stopping.is_set():
                    continue
                self._ready.clear()
                now = time.monotonic()
                self._crashes = [t for t in self._crashes if now - t < RESTART_WINDOW_S] + [now]
                if len(self._crashes) > MAX_RESTARTS:
                    self.failure = (f"llama-server died {len(self._crashes)} times within {RESTART_WINDOW_S:.0f} s "
                                    f"(last exit code {proc.returncode}); not restarting: {self._log_tail()}")
                    self._proc = None
                    self._ready.set()  # wake the waiting so they see the failure
                    return
                self.restarts += 1
                try:
                    self._launch()  # the same port first, so the URL clients hold stays right
                except ServerError as exc:
                    if self._stopping.is_set():
                        return
                    self.failure = str(exc)
                    self._proc = None
                    self._ready.set()
                    return

    def wait_ready(self, timeout: float | None = None) -> str:
        """The URL once the server is healthy (waits out a restart); ServerError if it is not coming back."""
        if self._stopping.is_set():
            raise ServerError("llama-server has been stopped")
        if not self._ready.wait(self.start_timeout if timeout is None else timeout):
            raise ServerError("llama-server is restarting and did not come back in time")
        if self.failure:
            raise ServerError(self.failure)
        if self._proc is None:
            raise ServerError("llama-server is not running")
        return self.url

    def add_adapters(self, adapters) -> bool:
        """Serve `adapters` too (a version published while the app runs). llama-server loads LoRAs only
        when it starts, so they are appended after those it has (no id ever moves) and it restarts
        with the longer list; requests wait for it in wait_ready(), and one cut off mid-answer is sent
        again by the engine for what remains (engines.server). True when anything was added."""
        with self._lock:
            new = [a for a in adapters if getattr(a, "usable", True) and a.key not in self.lora_ids]
            for adapter in new:
                path = Path(adapter.gguf_path)
                if not path.is_file() or "," in str(path):
                    raise ServerError(f"llama-server cannot load adapter {adapter.key} from {path}")
            if not new or self._stopping.is_set():
                return False
            for adapter in new:
                self.lora_ids[adapter.key] = len(self.lora_paths)
                self.lora_paths.append(Path(adapter.gguf_path))
            self._ready.clear()
            proc, self._proc = self._proc, None  # under the lock: the watchdog sees no death to count
            if proc is not None:
                self._kill(proc)
            self.reloads += 1
            try:
                self._launch()
            except ServerError as exc:
                self.failure = f"llama-server did not come back with the new adapters: {exc}"
                self._ready.set()  # wake the waiting so they see the failure
                raise
        return True

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM, then SIGKILL after `grace`; the watchdog does not restart what we stop."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
            self._ready.clear()
        if proc is not None:
            self._kill(proc, grace)
        if self._watchdog is not None and self._watchdog is not threading.current_thread():
            self._watchdog.join(timeout=5.0)
        if self._own_log:
            self.log_path.unlink(missing_ok=True)

    @staticmethod
    def _kill(proc: subprocess.Popen, grace: float = STOP_GRACE_S) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5.0)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
