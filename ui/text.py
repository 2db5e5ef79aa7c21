"""Text from users and files, shown in the app and never interpreted: no markdown, no HTML."""

from __future__ import annotations


def cell(text: str) -> str:
    """Uploaded text in markdown (a table cell or a line): no markdown, no HTML, no table breaks; at
    most 300 characters."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*") \
        .replace("_", "\\_").replace("`", "\\`").replace("[", "\\[").replace("\n", " ")[:300]


def escape(text: str) -> str:
    """Text inside HTML, an element's or a quoted attribute's: no tags, no entities, no way out of the quotes."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
            .replace('"', "&quot;"))
