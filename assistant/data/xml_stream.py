"""One part of an .xlsx (a zip member) streamed through expat within bounds.

No DTDs (so no entity expansion), bounded nesting, and one element budget for the whole file, so
that a hostile workbook within the size caps cannot take more than seconds of CPU or grow memory:
the reader (assistant.data.xlsx) sees start/end/text callbacks with local names, never a tree.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from xml.parsers import expat

from assistant.data.limits import MAX_CELL_CHARS, MAX_XML_DEPTH
from assistant.data.readers import LongText
from assistant.data.report import DataError

# Each element costs Python callbacks (1-3 us): this bounds the CPU a file within the size caps can
# take to seconds. A 50,000-row sheet of 6 text columns has about a million elements.
MAX_XML_ELEMENTS = 3_000_000


class Text:
    """Character data gathered up to MAX_CELL_CHARS; past it, only counted."""

    def __init__(self):
        self.parts: list[str] = []
        self.length = self.spaces = 0

    def add(self, data: str) -> None:
        if self.length <= MAX_CELL_CHARS:
            self.parts.append(data)
        self.length += len(data)
        self.spaces += data.count(" ") + data.count("\n") + data.count("\t")

    def value(self) -> str | LongText:
        return "".join(self.parts) if self.length <= MAX_CELL_CHARS else LongText(self.length, self.spaces)


class Budget:
    """Elements left for the whole file: one hostile member cannot spend the CPU of ten."""

    def __init__(self):
        self.left = MAX_XML_ELEMENTS


def parse_member(archive: zipfile.ZipFile, name: str, budget: Budget, start: Callable[[str, dict], None],
           end: Callable[[str], None] | None = None, text: Callable[[str], None] | None = None,
           after_chunk: Callable[[], Iterator] | None = None) -> Iterator:
    """Stream one member through expat, calling start/end/text with local names; yields whatever
    after_chunk yields after each chunk (the rows parsed so far)."""
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.buffer_text = True
    depth = 0

    def on_start(tag: str, attrs: dict) -> None:
        nonlocal depth
        depth += 1
        budget.left -= 1
        if depth > MAX_XML_DEPTH:
            raise DataError(f"the Excel file's XML is nested more than {MAX_XML_DEPTH} levels deep (an ordinary "
                            "sheet nests 7): it is not an ordinary spreadsheet; export it as CSV UTF-8")
        if budget.left < 0:
            raise DataError(f"the Excel file holds more than {MAX_XML_ELEMENTS:,} XML elements (a 50,000-row sheet "
                            "of 6 columns has about a million): save only the Q&A columns, or export it as CSV UTF-8")
        start(tag.rpartition(" ")[2], attrs)

    def on_end(tag: str) -> None:
        nonlocal depth
        depth -= 1
        if end is not None:
            end(tag.rpartition(" ")[2])

    def refuse_dtd(*_args) -> None:  # OOXML never has one; a DTD is how entity bombs get in
        raise DataError("the Excel file's XML declares a DTD, which a spreadsheet never does; export it as CSV UTF-8")

    parser.StartElementHandler, parser.EndElementHandler = on_start, on_end
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    if text is not None:
        parser.CharacterDataHandler = text
    with archive.open(name) as stream:
        while chunk := stream.read(1 << 16):
            parser.Parse(chunk, False)
            if after_chunk is not None:
                yield from after_chunk()
        parser.Parse(b"", True)
    if after_chunk is not None:
        yield from after_chunk()


def run(parsing: Iterator) -> None:
    for _ in parsing:
        pass
