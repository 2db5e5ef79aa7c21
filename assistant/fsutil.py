"""Files that are whole or absent: atomic writes, staging directories, and sha256 of files.

Atomic write: the data goes to a temporary file in the same directory (a rename is atomic only
within one file system), is fsynced, then `os.replace`d over the final name, so a reader sees the
old file or the new one, never half of either, even after a crash.

Staging: anything made of several files (an adapter version, an export, the HF copy of a base) is
built in a private directory whose name carries the builder's pid, `<prefix>-<pid>-<random><suffix>`,
and renamed into place when complete. A sweep removes only the leftovers whose builder is gone, so
it is safe beside a build still in progress in another process (assistant.stopping relies on the
`-<pid>-` part too, to remove a stopped process's own staging).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The pid and the random part, last in the name: "-<pid>-<random>" (".<pid>.<random>" is the form
# exports used before this module), then an optional ".staging".
_OWNER = re.compile(r"[-.](\d+)[-.][a-z0-9_]+(?:\.staging)?$")


# atomic writes ---------------------------------------------------------------------------------

@contextmanager
def replacing(path: Path, mode: int = 0o666) -> Iterator[Path]:
    """A temporary path beside `path` to write to; on success it is fsynced and renamed over `path`,
    on failure removed. For writers that want a path rather than bytes (GGUFWriter, a packager).

    The file is created with `mode` less the umask, as open() would (mkstemp's 0600 would make
    every export and adapter private to this user); pass 0o600 for secrets."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    try:
        yield tmp
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, mode: int = 0o666) -> Path:
    """Write `data` to `path` atomically."""
    with replacing(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: Path, text: str, mode: int = 0o666) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"), mode)


def write_json_atomic(path: Path, data, indent: int | None = 2, sort_keys: bool = True, mode: int = 0o666) -> Path:
    """Write `data` as JSON to `path` atomically (sorted, indented: manifests are read by people)."""
    return write_text_atomic(path, json.dumps(data, indent=indent, sort_keys=sort_keys), mode)


# staging directories ---------------------------------------------------------------------------

def new_staging(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A fresh private directory `parent/<prefix>-<pid>-<random><suffix>` to build in."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}-{os.getpid()}-", suffix=suffix, dir=parent))


def staging_owner(name: str) -> int | None:
    """The pid in a staging name, or None when the name carries none."""
    match = _OWNER.search(name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` still runs (this one always does; a zombie does not)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: beyond any pid this system gives
        return False
    except PermissionError:
        return True  # exists, owned by another user
    # A killed child nobody has waited for yet is a zombie: gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sweep_staging(parent: Path, pattern: str | None = None, keep_unowned: bool = False) -> int:
    """Remove the entries of `parent` (those matching the glob `pattern`, else all, dot-entries
    included) whose builder process is gone; how many.

    `keep_unowned`: leave entries whose name carries no pid (in a directory shared with finished
    results); otherwise they go too (a directory that holds only staging)."""
    parent = Path(parent)
    if not parent.is_dir():
        return 0
    removed = 0
    for path in (parent.iterdir() if pattern is None else parent.glob(pattern)):
        pid = staging_owner(path.name)
        if (pid is None and keep_unowned) or (pid is not None and pid_alive(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed += 1
    return removed


def move_into_place(staging: Path, target: Path) -> None:
    """Rename a finished staging directory to `target`, replacing an older one of that name.

    The old one is first renamed aside (a staging name, so a crash here leaves only something a
    sweep removes), never deleted in place: `target` is always complete, old or new."""
    staging, target = Path(staging), Path(target)
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}-{os.getpid()}-old.staging")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# hashing ---------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_file_cached(path: Path) -> str:
    """sha256 of a file, remembered in a `<name>.sha256` sidecar keyed by size and mtime: bases are
    hundreds of MB and are identified at every start."""
    path = Path(path)
    cached = read_sidecar_hash(path)
    if cached:
        return cached
    value = sha256_file(path)
    write_sidecar_hash(path, value)
    return value


def read_sidecar_hash(path: Path) -> str | None:
    """The remembered sha256 of `path`, if the sidecar still describes the file as it is."""
    try:
        stat = Path(path).stat()
        data = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("size") == stat.st_size and data.get("mtime_ns") == stat.st_mtime_ns:
        return data.get("sha256")
    return None


def write_sidecar_hash(path: Path, value: str) -> None:
    """Remember `value` as the sha256 of `path` as it is now (size and mtime)."""
    stat = Path(path).stat()
    try:
        write_json_atomic(_sidecar(path), {"sha256": value, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
                          indent=None, sort_keys=False)
    except OSError:
        pass  # a read-only location: we simply hash again next time


def _sidecar(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + ".sha256")
