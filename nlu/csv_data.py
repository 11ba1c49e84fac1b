"""Reader of `text,intent` CSV files, the usual shape of public intent data sets.

BANKING77 was published with the header `text,category`, and other sets use
`label`; all three mean the intent.
"""

from __future__ import annotations

import csv
import io

from nlu.training_data import Example, TrainingData, TrainingDataError

TEXT_COLUMNS = ("text", "example", "sentence", "utterance")
LABEL_COLUMNS = ("intent", "category", "label")


def read_csv(content: str, path: str, delimiter: str = ",") -> TrainingData:
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise TrainingDataError(path, 1, "empty CSV file (expected a header such as 'text,intent')") from None
    except csv.Error as exc:
        raise TrainingDataError(path, 1, f"bad CSV: {exc}") from None
    names = [h.strip().lower() for h in header]
    text_col = next((names.index(c) for c in TEXT_COLUMNS if c in names), None)
    label_col = next((names.index(c) for c in LABEL_COLUMNS if c in names), None)
    if text_col is None:
        raise TrainingDataError(path, 1, f"CSV header {header} has no text column (expected one of: {', '.join(TEXT_COLUMNS)})")
    if label_col is None:
        raise TrainingDataError(
            path, 1, f"CSV header {header} has no intent column (expected one of: {', '.join(LABEL_COLUMNS)})"
        )
    data = TrainingData()
    line = 1
    try:
        for row in reader:
            start_line = line + 1
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) <= max(text_col, label_col):
                raise TrainingDataError(path, start_line, f"expected {len(header)} columns, got {len(row)}")
            text, intent = row[text_col].strip(), row[label_col].strip()
            if not text:
                raise TrainingDataError(path, start_line, "empty text")
            if not intent:
                raise TrainingDataError(path, start_line, "empty intent")
            base, _, key = intent.partition("/")
            data.examples_as_written.append(Example(text, base, (), key or None, source=path, line=start_line))
    except csv.Error as exc:
        raise TrainingDataError(path, reader.line_num, f"bad CSV: {exc}") from None
    return data
