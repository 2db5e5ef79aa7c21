"""The key-values of a GGUF file: one small reader for the metadata and the tokenizer keys.

Why not the `gguf` package's GGUFReader: it maps the whole file and builds a numpy view of every
field and tensor before it returns, the 262k vocabulary strings included. Measured on the embedded
base (gemma-3-270m Q4_K_M, 2 shared CPU cores, best of 2-3 runs):

    GGUFReader(path)                                16.6 s
    GGUFReader(path) + tokenizer.* contents()       20.2 s
    read_metadata(path)   (arrays skipped)          0.07 s
    read_tokenizer(path)  (tokenizer arrays read)   0.21 s

The metadata is read at every start (the base's architecture and prompt format) and the tokenizer
at every merged export, so the 100-fold difference would be paid often. The reader follows the
GGUF spec (v2/v3 header, then key, type, value triples) and stops before the tensor infos.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from assistant.gguf import GGUFReadError

# GGUF value types (gguf.GGUFValueType): 8 is a string, 9 an array, the rest fixed-size scalars.
STRING, ARRAY = 8, 9
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
         7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
MAX_STRING = 1 << 26  # no real key or value is near 64 MiB; a larger length is a corrupt or hostile file
SKIPPED = object()  # an array that was not asked for


def read_metadata(path: Path) -> dict:
    """Scalar and string key-values of a GGUF file (arrays skipped, which is what makes it fast)."""
    return {key: value for key, value, _, _ in _key_values(path, lambda key: False, errors="strict")
            if value is not SKIPPED}


def read_tokenizer(path: Path) -> list[tuple]:
    """The tokenizer.* keys of a GGUF file, arrays included, as GGUFWriter.add_key_value arguments:
    (key, value, GGUFValueType, sub_type or None), in file order."""
    import gguf

    T = gguf.GGUFValueType
    # Byte-fallback pieces need not be valid UTF-8; surrogateescape carries them through.
    return [(key, value, T(vtype), T(sub) if sub is not None else None)
            for key, value, vtype, sub in _key_values(path, lambda key: key.startswith("tokenizer."),
                                                      errors="surrogateescape")
            if key.startswith("tokenizer.")]


def _key_values(path: Path, want_array: Callable[[str], bool], errors: str) -> Iterator[tuple]:
    """(key, value, type, array sub-type) for every key; arrays not wanted come back as SKIPPED.

    GGUFReadError for anything that is not a well-formed GGUF header; OSError as it comes."""
    with Path(path).open("rb") as fh:
        try:
            if fh.read(4) != b"GGUF":
                raise GGUFReadError("no GGUF magic")
            version, _tensors, kv_count = struct.unpack("<IQQ", fh.read(20))
            if version not in (2, 3):
                raise GGUFReadError(f"unsupported GGUF version {version}")
            for _ in range(kv_count):
                key = _string(fh, "strict")
                (vtype,) = struct.unpack("<I", fh.read(4))
                if vtype == ARRAY:
                    sub, value = _array(fh, want_array(key), errors)
                    yield key, value, vtype, sub
                else:
                    yield key, _scalar(fh, vtype, errors), vtype, None
        except (struct.error, UnicodeDecodeError) as exc:
            raise GGUFReadError(f"truncated or corrupt GGUF header ({exc})") from exc


def _string(fh, errors: str) -> str:
    (length,) = struct.unpack("<Q", fh.read(8))
    if length > MAX_STRING:
        raise GGUFReadError("implausible string length")
    data = fh.read(length)
    if len(data) != length:
        raise GGUFReadError("truncated string")
    return data.decode("utf-8", errors=errors)


def _scalar(fh, vtype: int, errors: str):
    if vtype in SCALARS:
        fmt = SCALARS[vtype]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if vtype == STRING:
        return _string(fh, errors)
    raise GGUFReadError(f"unknown GGUF value type {vtype}")


def _array(fh, wanted: bool, errors: str) -> tuple[int, object]:
    sub, count = struct.unpack("<IQ", fh.read(12))
    if sub in NUMPY:
        size = count * np.dtype(NUMPY[sub]).itemsize
        if not wanted:
            fh.seek(size, 1)
            return sub, SKIPPED
        data = fh.read(size)
        if len(data) != size:
            raise GGUFReadError("truncated array")
        return sub, np.frombuffer(data, dtype=NUMPY[sub]).tolist()
    if sub == STRING:
        if not wanted:
            for _ in range(count):
                (length,) = struct.unpack("<Q", fh.read(8))
                fh.seek(length, 1)
            return sub, SKIPPED
        return sub, [_string(fh, errors) for _ in range(count)]
    raise GGUFReadError(f"unsupported GGUF array type {sub}")
