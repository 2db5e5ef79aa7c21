"""What an adapter may be called, and the errors that name an adapter.

Its own module because both the registry (which lays adapters out by name) and serving (which
says which version of a name serves) need them, and neither should import the other to get them.
"""

from __future__ import annotations

from assistant.adapter_files import NAME_RE

RESERVED_NAMES = ("none", "base", "auto")  # adapter choices with a meaning of their own


class AdapterError(Exception):
    """A problem with a named adapter; the message is for the user."""


class UnknownAdapter(AdapterError):
    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        names = ", ".join(available) or "none published yet"
        super().__init__(f"unknown adapter '{name}'; available: {names}")


def validate_name(name: str) -> str:
    """The name itself, or AdapterError saying what is wrong with it (it becomes a directory name)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):  # fullmatch: "$" would allow "x\n"
        shown = repr(name) if not isinstance(name, str) or len(name) <= 60 else repr(name[:60]) + "…"
        raise AdapterError(f"invalid adapter name {shown}: {_name_problem(name)}; use 1-48 lowercase letters, "
                           "digits, '-' or '_', starting with a letter or digit")
    if name in RESERVED_NAMES:
        raise AdapterError(f"'{name}' is reserved (the adapter choices none, base and auto); pick another name")
    return name


def _name_problem(name) -> str:
    import unicodedata

    if not isinstance(name, str):
        return f"it is {type(name).__name__}, not text"
    if not name:
        return "it is empty"
    if len(name) > 48:
        return f"it is {len(name)} characters long (at most 48)"
    for char in name:
        if char in "/\\":
            return "it contains a path separator"
        if unicodedata.category(char)[0] == "C":
            return f"it contains a control character (U+{ord(char):04X})"
        if not char.isascii():  # a Cyrillic 'а' looks like 'a' but would name another directory
            return f"{char!r} (U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}) is not a plain ASCII letter"
    if any(char.isspace() for char in name):
        return "it contains a space"
    if name.startswith((".", "-", "_")):
        return f"it starts with {name[0]!r}"
    if name.lower() != name:
        return "it has uppercase letters"
    return "it contains a character other than a-z, 0-9, '-' or '_'"
