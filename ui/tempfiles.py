"""Gradio's temporary files: where they live, what of ours goes there, and when it goes away.

- Each app process gets its own Gradio temp directory (`GRADIO_TEMP_DIR`), and at start the ones
  of processes no longer running are removed, so uploads and downloads a crashed or killed app
  left behind do not pile up (the shared default, /tmp/gradio, cannot be cleaned safely: other
  apps use it). While the app runs, Gradio's `delete_cache` ages them out (ui.app).
- A trainer's download is linked (or copied) into a fresh directory with a random 128-bit name
  inside it, for that request only. Gradio serves files there to logged-in users who know the
  path, and only that trainer is told it; the exports directory itself is never served.
- An uploaded file is deleted once a training job has taken its own copy.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

_PREFIX = "app-"


def use_private_dir() -> Path:
    """This process's Gradio temp directory (set in the environment; call before building the
    app), after removing those of processes that are gone."""
    import psutil

    root = Path(tempfile.gettempdir()) / f"field-assistant-gradio-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    for old in root.glob(f"{_PREFIX}*"):
        pid = old.name[len(_PREFIX):]
        if not pid.isdigit() or (int(pid) != os.getpid() and not psutil.pid_exists(int(pid))):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / f"{_PREFIX}{os.getpid()}"
    mine.mkdir(mode=0o700, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(mine)
    return mine


def gradio_dir() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def offer(paths) -> list[str]:
    """The files, in a fresh random directory in Gradio's temp dir, for one download request.
    Hard links where the file system allows (no copy of a GB model), else copies."""
    folder = gradio_dir() / f"download-{secrets.token_hex(16)}"
    folder.mkdir(mode=0o700, parents=True)
    offered = []
    for path in map(Path, paths):
        target = folder / path.name
        try:
            os.link(path, target)
        except OSError:
            shutil.copyfile(path, target)
        offered.append(str(target))
    return offered


def discard_upload(path) -> bool:
    """Delete a file Gradio received as an upload (and its folder once empty); True if it did.
    Anything outside Gradio's temp directory is left alone."""
    root = gradio_dir()
    try:
        file = Path(path).resolve()
    except OSError:
        return False
    if file == root or not file.is_relative_to(root) or not file.is_file():
        return False
    file.unlink(missing_ok=True)
    if file.parent != root:
        try:
            file.parent.rmdir()
        except OSError:
            pass  # not empty: another upload shares the folder
    return True
