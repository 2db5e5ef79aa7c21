"""Loading and checking uploaded question-answer files for LoRA fine-tuning.

Reads CSV/TSV, Excel (.xlsx), JSON Lines and JSON into ``Record`` rows, within the bounds in
``limits`` (rows, cells, unzipped size, nesting), so a small hostile file is refused in seconds.
Bad rows are rejected with a reason the user can act on, exact duplicates are folded, questions
with conflicting answers are reported, and whole-file problems raise ``DataError`` with a message
meant to be shown as is. The resulting ``DataReport`` is what the CLI prints and what training
checks before it starts.

  load.py     size, format and encoding; the entry points
  readers.py  CSV and JSON readers, the table shape   xlsx.py  the bounded Excel reader
  records.py  rows -> records, rejections, conflicts  report.py  the report's dataclasses
"""

from assistant.data.limits import MAX_FILE_BYTES, MAX_ROWS
from assistant.data.load import SUPPORTED_FORMATS, load_qa_file, read_qa_bytes
from assistant.data.records import MIN_RECOMMENDED_PAIRS
from assistant.data.report import Conflict, DataError, DataReport, Record, Rejection

__all__ = ["MAX_FILE_BYTES", "MAX_ROWS", "MIN_RECOMMENDED_PAIRS", "SUPPORTED_FORMATS", "Conflict", "DataError",
           "DataReport", "Record", "Rejection", "load_qa_file", "read_qa_bytes"]
