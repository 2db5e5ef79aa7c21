"""What checking a Q&A file produces: the records, the rejected rows and why, and the report."""

from __future__ import annotations

import textwrap
from dataclasses import asdict, dataclass, field


class DataError(Exception):
    """A whole-file problem: the message is shown to the user as is (no traceback)."""


@dataclass
class Record:
    question: str
    answer: str
    row: int
    split: str = "train"
    keywords: list[str] = field(default_factory=list)
    paraphrase_of: str | None = None


@dataclass
class Rejection:
    row: int
    reason: str


@dataclass
class Conflict:
    question: str
    answers: list[str]
    rows: list[int]


def question_key(question: str) -> str:
    """Questions that differ only in case or final punctuation ask the same thing."""
    return question.casefold().rstrip("?.!？。 ").strip()


@dataclass
class DataReport:
    source: str
    sha256: str
    file_format: str
    rows_read: int
    records: list[Record]
    rejected: list[Rejection]
    duplicates_folded: int
    conflicts: list[Conflict]
    warnings: list[str]
    lint: list = field(default_factory=list)  # assistant.lint.LintFinding: similar questions
    augmentation: dict | None = None  # assistant.training.augment.preview: the question forms training makes

    @property
    def train(self) -> list[Record]:
        return [r for r in self.records if r.split == "train"]

    @property
    def test(self) -> list[Record]:
        return [r for r in self.records if r.split == "test"]

    def unique_pairs(self) -> int:
        return len({(question_key(r.question), r.answer) for r in self.records})

    def blocking_problems(self, allow_conflicts: bool = False) -> list[str]:
        problems = []
        if not self.train:
            problems.append("there are no training rows: every accepted row is held out (split=test)")
        if self.conflicts and not allow_conflicts:
            problems.append(f"{len(self.conflicts)} question(s) have conflicting answers; fix them "
                            "or allow conflicts to train anyway")
        return problems

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(train_count=len(self.train), test_count=len(self.test), unique_pairs=self.unique_pairs())
        return data

    def summary(self) -> str:
        lines = [f"{self.source} ({self.file_format}, sha256 {self.sha256[:12]})",
                 f"rows read: {self.rows_read}; accepted: {len(self.records)} (train {len(self.train)}, "
                 f"test {len(self.test)}); rejected: {len(self.rejected)}; "
                 f"duplicates folded: {self.duplicates_folded}; unique pairs: {self.unique_pairs()}"]
        if self.rejected:
            lines.append("Rejected rows:")
            lines += [f"  row {r.row}: {r.reason}" for r in self.rejected[:50]]
            if len(self.rejected) > 50:  # a 50,000-row file must not print 50,000 lines
                lines.append(f"  …and {len(self.rejected) - 50} more (--json lists every one)")
        if self.conflicts:
            lines.append("Conflicting answers:")
            for c in self.conflicts:
                answers = " | ".join(textwrap.shorten(a, 60, placeholder="…") for a in c.answers)
                lines.append(f"  {textwrap.shorten(c.question, 60, placeholder='…')!r} (rows {', '.join(map(str, c.rows))}): {answers}")
        if self.warnings:
            lines.append("Warnings:")
            lines += [f"  - {w}" for w in self.warnings]
        if self.augmentation:
            lines += augmentation_lines(self.augmentation)
        if self.lint:
            lines.append("Similar questions (lint):")
            lines += [f"  - {f.message}" for f in self.lint]
        return "\n".join(lines)


def augmentation_lines(preview: dict) -> list[str]:
    """The report's lines on question forms (assistant.training.augment.preview), plain text."""
    about = "about " if preview["estimated"] else ""
    state = "on in the fast recipe" if preview["on"] else "off by default; --set augment=N turns it on"
    lines = [f"Question forms ({state}): augment={preview['count']} adds {about}{preview['forms']} generated "
             f"wordings for {about}{preview['facts_augmented']} of {preview['facts']} facts (facts already "
             "uploaded in several wordings get fewer; held-out rows are never used)"]
    return lines + [f"  e.g. {e['question']!r} -> {e['form']!r}" for e in preview["examples"]]
