"""External human contacts (`contacts.yaml` or `contacts.csv`, t_contacts), keyed by their E.164 number."""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import Field

from mirage.config.types import E164, NUL, NUL_MESSAGE, Model, Tag

CSV_HEADER = ("number", "name", "tags", "notes")


class Contact(Model):
    """A person outreach may talk to; the number is the natural key."""

    number: E164 = Field(description='The contact\'s WhatsApp number in E.164 ("+5511987654321").')
    name: str = Field("", description="Display name (t_contacts.display_name). Default ''.")
    tags: list[Tag] = Field(default_factory=list, description="Tags outreach targets select by. Default [].")
    notes: str = Field("", description="Free notes for operators. Default ''.")
    previous_numbers: list[E164] = Field(
        default_factory=list, description="Numbers this contact had before; a change becomes an update. Default []."
    )


class ContactsFile(Model):
    """`contacts.yaml`."""

    contacts: list[Contact] = Field(default_factory=list, description="The contacts. Default [].")


class CsvRow:
    """A CSV row turned into a contact mapping, with the line and each field's column for error messages."""

    __slots__ = ("cols", "line", "value")

    def __init__(self, line: int, value: dict[str, Any], cols: dict[str, int]) -> None:
        self.line = line
        self.value = value
        self.cols = cols


class CsvProblem(Exception):
    """A CSV shape problem at line:col."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


def parse_contacts_csv(text: str) -> list[CsvRow]:
    """Rows of `number,name,tags,notes` (tags separated by ';'); raises CsvProblem on a bad header or row."""
    text = text.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[CsvRow] = []
    header: list[str] | None = None
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip().lower() for f in fields]
                unknown = [h for h in header if h not in CSV_HEADER]
                if unknown or "number" not in header or len(set(header)) != len(header):
                    raise CsvProblem(line, 1, f"the header must be {','.join(CSV_HEADER)} (number required)")
                continue
            if len(fields) != len(header):
                raise CsvProblem(line, 1, f"expected {len(header)} fields, found {len(fields)}")
            value: dict[str, Any] = {}
            cols: dict[str, int] = {}
            col = 1
            for name, raw in zip(header, fields, strict=True):
                if NUL in raw:
                    raise CsvProblem(line, col, NUL_MESSAGE)
                cols[name] = col
                col += len(raw) + 1
                v = raw.strip()
                value[name] = [t.strip() for t in v.split(";") if t.strip()] if name == "tags" else v
            rows.append(CsvRow(line, value, cols))
    except csv.Error as e:
        raise CsvProblem(reader.line_num, 1, f"CSV syntax error: {e}") from e
    return rows
