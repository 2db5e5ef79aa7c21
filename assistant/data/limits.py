"""The bounds every uploaded Q&A file is read within, so that a small hostile file (a zip bomb, a
sheet that declares a million rows, JSON nested a million deep) costs seconds and megabytes, and
is refused with a message that says which bound it broke.

Each bound is far above what a real question-answer file needs; the numbers are measured in
tests/test_hostile_files.py and listed in the README ("Running it for a team").
"""

MAX_FILE_BYTES = 20 * 1024 * 1024  # the default upload cap (`assistant serve --max-upload-mb` changes it)

# Far more Q&A than any adapter trains on (the shipped ones have 19 and 282 pairs; training time grows
# with the rows), and it keeps reading, checking and the similar-question lint of one file to seconds.
MAX_ROWS = 50_000

# A Q&A table has 2-6 columns; more than this is a different kind of sheet (or a file made to be wide).
MAX_COLUMNS = 64

# One cell longer than this is thousands of tokens over the answer limit: it is rejected as a row
# without being normalised or tokenised (both cost memory in proportion to the text).
MAX_CELL_CHARS = 64 * 1024

# One CSV row (its physical lines together) longer than this fails the file: it is a missing quote
# or a pasted document, and reading it cell by cell costs ~60 bytes a cell.
MAX_ROW_CHARS = 2 * 1024 * 1024

# XLSX is a zip of XML. Text XML compresses 5-20x, and a sheet at MAX_ROWS with long answers is
# about 40 MB unzipped; past these the file is a zip bomb (216 MB of XML in a 653 KB file was one).
XLSX_EXPANSION = 5  # total unzipped size at most this many times the upload cap (100 MB at 20 MB)
MAX_XLSX_MEMBERS = 1_000  # a workbook has 10-30 parts, plus 2-3 per sheet
MAX_XLSX_SHEETS = 100  # only the first is read; the others are only counted
MAX_XML_DEPTH = 32  # a sheet nests 7 deep (worksheet/sheetData/row/c/is/r/t); extensions a few more
MAX_SHARED_STRINGS = 1_000_000  # distinct cell texts: MAX_ROWS x 20 columns

# JSON: the parsed document costs ~60 bytes a value and Python recursion per level, so the raw
# text is measured first (outside strings: brackets and commas) and refused past these.
MAX_JSON_DEPTH = 32  # a chat-format row nests 6 deep (list/object/messages/message/content/part)
MAX_JSON_VALUES = 1_000_000  # objects, lists and values: 20 a row at MAX_ROWS


def xlsx_unzipped_cap(max_bytes: int) -> int:
    return XLSX_EXPANSION * max(max_bytes, MAX_FILE_BYTES)
