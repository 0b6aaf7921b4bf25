"""Load step: tables, image folders, sequence arrays and bundled demos.

`load_dataset` turns what the user points at into a `Dataset` of raw
features and string labels; `split_dataset` makes the stratified
train/val/test split that the rest of the pipeline uses. Every problem is a
`DataError` naming the file, column or sample at fault.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Mapping

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from pipelines.columns import (DROPPED, ColumnRole, Role, apply_roles, blanks_missing, examples, infer_roles,
                               missing_marks, role_notes, stray_text)
from pipelines.config import TrainConfig
from pipelines.errors import DataError, names, shown
from pipelines.export.tflite import INT8_IO_TOKEN_IDS
from pipelines.text.folder import FOLDER_ROLE, TEXT_COLUMN, is_text_folder, read_text_folder

Kind = Literal["table", "image", "sequence"]
PARQUET_SUFFIXES = {".parquet", ".pq"}
TABLE_SUFFIXES = {".csv", ".tsv", *PARQUET_SUFFIXES}  # a .csv or .tsv: its separator is sniffed
SPREADSHEET_SUFFIXES = {".xlsx", ".xls", ".xlsm", ".ods"}  # refused with how to save them as CSV
TS_SUFFIX = ".ts"  # the UCR/UEA archives' time-series classification files (aeon's and sktime's format)
SEQUENCE_SUFFIXES = {".npz", TS_SUFFIX}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}  # Pillow reads them all
DELIMITERS = ",;\t|"  # what a CSV's separator is sniffed among
SNIFFED_ROWS = 1000  # rows read to tell a CSV's decimal mark
# A number written with a decimal comma (1,71; -0,5; ,25), and any number of a column that holds such numbers.
DECIMAL_COMMA = r"[+-]?\d*,\d+"
COMMA_NUMBERS = rf"(?:{DECIMAL_COMMA}|[+-]?\d+)"
DECIMAL_COMMA_NOTE = "numbers with a decimal comma (as 1,5) were read as numbers: the file separates columns with {sep!r}"
MIN_ROWS_PER_CLASS = 3  # one each for train, val and test
# Classes with fewer rows than a split needs are left out, with a note, while their rows are at most this share of
# the data and two classes or more remain (AutoGluon drops such classes too); more is refused as a labelling fault.
# openintro's ucla_f18: 28 of 173 subjects had 1 or 2 courses (47 of 3,950 rows), and the run was refused.
RARE_ROWS_MAX_SHARE = 0.05
LENGTH_RULE = "zero-pad or cut at the end to the training length"
TRAINING_LENGTH = "the training length"  # how `fit_length`'s notes name the length they fit to
# A numeric label column with more distinct values than this, and either fractions or more values than
# CONTINUOUS_SHARE of its rows, is a quantity to predict (regression), not classes.
CONTINUOUS_MIN_VALUES = 20
CONTINUOUS_SHARE = 0.05
LISTED = 5  # how many offending values an error names before it counts the rest
MIXED_REMEDY = "fix or blank them"  # how a column of numbers with some text is mended
MISSING_MARKERS = ["\\N"]  # read as missing beside pandas' own (NA, NULL, ...): SQL dumps' null (MySQL, PostgreSQL)


@dataclass
class Dataset:
    """Raw features and labels of one input kind.

    `features` is a DataFrame for tables, float32 [N, H, W, C] for images and
    float32 [N, T, F] for sequences. `labels` holds strings so that label
    files read back the same whatever the source's dtype. `lengths` holds
    each sequence's own time length before padding or cutting (sequences only).
    `roles` holds each raw column's role once they are applied (tables from `load_dataset`).
    """

    kind: Kind
    features: pd.DataFrame | np.ndarray
    labels: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)
    lengths: np.ndarray | None = None
    roles: dict[str, Role] | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.labels.tolist()))

    def take(self, index: np.ndarray) -> "Dataset":
        features = self.features.iloc[index] if isinstance(self.features, pd.DataFrame) else self.features[index]
        lengths = None if self.lengths is None else self.lengths[index]
        return replace(self, features=features, labels=self.labels[index], notes=list(self.notes), lengths=lengths)

    def concat(self, other: "Dataset") -> "Dataset":
        if isinstance(self.features, pd.DataFrame):
            features = pd.concat([self.features, other.features], ignore_index=True)
        else:
            features = np.concatenate([self.features, other.features])
        both = self.lengths is not None and other.lengths is not None
        lengths = np.concatenate([self.lengths, other.lengths]) if both else None
        return replace(self, features=features, labels=np.concatenate([self.labels, other.labels]),
                       notes=list(dict.fromkeys([*self.notes, *other.notes])), lengths=lengths)

    def with_length(self, length: int) -> "Dataset":
        """These sequences under `LENGTH_RULE` at `length`; notes about the old length give way to the new ones."""
        own = self.lengths if self.lengths is not None else np.full(len(self), self.features.shape[1])
        features, notes = fit_length([s[:n] for s, n in zip(self.features, own)], length)
        stale = length_notes(own, self.features.shape[1], "length")
        return replace(self, features=features, notes=[n for n in self.notes if n not in stale] + notes,
                       lengths=np.asarray(own))

    def with_roles(self, roles: dict[str, Role]) -> "Dataset":
        """This table's columns as `roles` say (`pipelines.columns`), with a note per column not used as it came."""
        return replace(self, features=apply_roles(self.features, roles),
                       notes=list(dict.fromkeys([*self.notes, *role_notes(roles)])), roles=roles)

    def fingerprint(self) -> dict:
        """sha256 of features and labels, row count and label counts: enough to tell two datasets apart."""
        digest = hashlib.sha256()
        if isinstance(self.features, pd.DataFrame):
            digest.update(",".join(map(str, self.features.columns)).encode())
            digest.update(pd.util.hash_pandas_object(self.features, index=False).to_numpy().tobytes())
        else:
            digest.update(np.ascontiguousarray(self.features, dtype=np.float32).tobytes())
        digest.update("\n".join(map(str, self.labels)).encode())
        counts = collections.Counter(map(str, self.labels))
        return {"sha256": digest.hexdigest(), "rows": len(self), "labels": dict(sorted(counts.items())),
                "source": self.source, "kind": self.kind}


@dataclass
class Splits:
    """Train/val/test parts; test is never seen by search or fine-tuning.

    Attributes:
        train, val, test: the parts as `Dataset`s; class_names: every class of the training data, sorted.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    class_names: list[str]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def load_dataset(config: TrainConfig, roles: dict[str, Role] | None = None) -> tuple[Dataset, Dataset | None]:
    """Load the training data and, if given, the user's test set; a table's columns take their roles.

    `roles` (a retrain's: its champion's) are applied as they are; else they are inferred from the training
    file's values, with `config.column_roles` overriding.
    """
    if config.dataset:
        data, test = load_bundled(config.dataset)
    else:
        given = {name: role.role for name, role in roles.items()} if roles is not None else config.column_roles
        data = load_path(Path(config.data), config.target, config.image_size, given)
        test = None
        if config.test_data is not None:
            size = data.features.shape[1:3] if data.kind == "image" else None
            test = load_path(Path(config.test_data), config.target, size, given, training=False)
            test = _matched_test(data, test)
    if data.kind == "table":
        unknown = [str(c) for c in data.features.columns if roles is not None and str(c) not in roles]
        if unknown:
            data.notes.append(f"columns the model was not trained on were ignored: {', '.join(unknown)}")
        if roles is None and data.roles is not None:  # a text folder: its one column is text
            roles = data.roles
        if roles is None:
            try:
                roles = infer_roles(data.features, config.column_roles)
            except ValueError as exc:
                raise DataError(f"{data.source}: {exc}") from None
        data = data.with_roles(roles)
        if data.features.shape[1] == 0:
            raise DataError(f"{data.source}: no feature column is left once each column's role is applied "
                            f"({'; '.join(role_notes(roles))}); set one with --column-role NAME=ROLE")
        test = test.with_roles(roles) if test is not None else None
        if getattr(config, "int8_io", False) and any(role.role == ColumnRole.TEXT for role in roles.values()):
            raise DataError(INT8_IO_TOKEN_IDS)
    return data, test


def check_source(path: Path, target: str | None, rows_per_class: int | None = None,
                 given_roles: Mapping[str, str] | None = None) -> None:
    """What can be checked before the data is loaded (a text folder's files and a .ts file are read: they are small
    text): the path exists and is of a type kerasflow reads, a text folder's files are UTF-8, an image folder has
    class folders of images whose headers read, a .ts file parses, an .npz holds no pickle (array headers only), and
    a table has its target column and the column holds a class on every row (the header and that column); with
    `rows_per_class` (`rows_per_class_needed`: training data), there are two classes or more and each has that many
    rows (not for an .npz, whose labels are read with its arrays). With `given_roles` (the user's --column-role, {}
    for none; a retrain's, its champion's), a table is read whole and its feature columns checked as `load_table`
    checks them (`check_feature_columns`): a column of numbers with some text was found after a server start (31 s).

    Runs before anything starts (the CLI calls it before Prefect's server), so
    the commonest mistakes cost a second, not a server start.
    """
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    check_file_type(path)
    if path.is_dir() and is_text_folder(path):
        _, labels = read_text_folder(path)  # every file decodes as UTF-8, or one line names the first that does not
        check_training_labels(path, labels, rows_per_class)
    elif path.is_dir():
        check_image_folder(path, rows_per_class)
    if path.is_file() and path.suffix.lower() in SEQUENCE_SUFFIXES:
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty")
        if path.suffix.lower() == TS_SUFFIX:
            _, labels = read_ts_file(path, labelled=True)  # text, parsed in a second: its faults found before any work
            check_training_labels(path, labels, rows_per_class)
        else:
            check_sequence_file(path)
    if path.is_file() and path.suffix.lower() in TABLE_SUFFIXES:
        if not target:
            raise DataError(f"{path}: a table needs --target, the name of its label column")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty")
        try:
            columns = table_columns(path)
            if target not in columns:
                raise DataError(f"{path}: no column {shown(target)}; columns are {names(columns)}")
            whole = read_table(path) if given_roles is not None else None  # its feature columns are checked too
            labels = blanks_missing(whole[target]) if whole is not None else _labels_of(path, target)
        except DataError:
            raise
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        except Exception:  # unreadable: `load_table` reports it with the parser's own words
            return
        check_labelled(path, labels)
        check_not_continuous(path, labels)
        check_training_labels(path, labels, rows_per_class)
        if whole is not None:
            check_feature_columns(path, whole.drop(columns=[target]), given_roles, bool(rows_per_class))


def table_columns(path: Path) -> list[str]:
    """A table's column names, from its header (a CSV's, whose names must be unique) or its schema (Parquet)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        import pyarrow.parquet

        return list(pyarrow.parquet.read_schema(path).names)
    sep = csv_delimiter(path)
    check_unique_header(path, sep)
    return [str(c) for c in pd.read_csv(path, nrows=0, sep=sep).columns]


def check_test_data(test: Path, data: Path, target: str | None, given_roles: Mapping[str, str] | None) -> None:
    """A `--test-data` file or folder is of the training data's kind and holds only classes the training data has,
    and a test table every column of the training table that the model takes (its cells may be empty): each fault
    was found after the server's start (33 s). A column the user's --column-role drops, or that inference drops (a
    row number), may be absent. Read: the headers and label columns of tables, the class folders and image files
    of an image folder, the files of a text folder, a .ts file's labels, and the training table's values of a
    column the test table lacks (to infer its role)."""
    kinds = source_kind(test), source_kind(data)
    if None not in kinds and kinds[0] != kinds[1]:
        raise _other_kind(test, *kinds)
    try:
        labels = _source_labels(test, target), _source_labels(data, target)
        columns = [c for c in table_columns(data) if c != target] if is_table(data) and is_table(test) else []
    except DataError:
        raise
    except Exception:  # unreadable: the load reports it with the parser's own words
        return
    unseen = sorted(set(labels[0]) - set(labels[1])) if None not in labels else []
    if unseen:
        raise _unseen_labels(test, unseen)
    absent = absent_columns(test, columns)
    if absent:
        roles = infer_roles(read_table(data)[absent], {c: r for c, r in (given_roles or {}).items() if c in absent})
        absent = [c for c in absent if roles[c].role not in DROPPED]
    them = "it" if len(absent) == 1 else "them"
    check_columns_present(test, absent, f"the training data ({data.name}) has",
                          f"add {them} (cells may be empty), or train without {them}: --column-role NAME=ignore")


def source_kind(path: Path) -> str | None:
    """The `Dataset.kind` a path loads as (a text folder is a table of one column), told from the path alone;
    None for an .npz, whose arrays tell."""
    if is_table(path) or (path.is_dir() and is_text_folder(path)):
        return "table"
    if path.is_dir():
        return "image"
    return "sequence" if path.suffix.lower() == TS_SUFFIX else None


def _source_labels(path: Path, target: str | None) -> list[str] | None:
    """The class names a path's rows carry, as strings (None where they are not read before the load)."""
    if is_table(path):
        return _label_strings(_labels_of(path, target).dropna()).tolist()
    if path.is_dir():
        return list(read_text_folder(path)[1] if is_text_folder(path) else image_files(path)[1])
    if path.suffix.lower() == TS_SUFFIX:
        return _label_strings(read_ts_file(path, labelled=True)[1]).tolist()
    return None


def _other_kind(source: Path | str, test_kind: str, data_kind: str) -> DataError:
    return DataError(f"{source}: test data is {test_kind} data but training data is {data_kind} data")


def _labels_of(path: Path, target: str | None) -> pd.Series:
    """A table's label column, its blank cells missing."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        labels = pd.read_parquet(path, columns=[target])[target]
    else:
        labels = pd.read_csv(path, usecols=[target], sep=csv_delimiter(path), na_values=MISSING_MARKERS)[target]
    return blanks_missing(labels)


def _unseen_labels(source: Path | str, unseen: list) -> DataError:
    return DataError(f"{source}: test labels [{', '.join(map(shown, unseen[:LISTED]))}] never appear in the training "
                     "data")


def check_columns_present(path: Path, columns: list[str], whose: str, remedy: str) -> None:
    """A table at `path` holds each of `columns`, which `whose` says whose they are; `remedy` ends the message."""
    absent = absent_columns(path, columns) if is_table(path) else []
    if absent:
        what = f"column {absent[0]}" if len(absent) == 1 else f"{len(absent)} columns ({names(absent)})"
        raise DataError(f"{path}: no {what}, which {whose} and the model takes; {remedy}")


def absent_columns(path: Path, columns: list[str]) -> list[str]:
    """Which of `columns` table `path`'s header lacks (none if it cannot be read: the load reports that)."""
    try:
        present = set(table_columns(path))
    except DataError:
        raise
    except Exception:
        return []
    return [c for c in columns if c not in present]


def is_table(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TABLE_SUFFIXES


def load_path(path: Path, target: str | None, image_size: tuple[int, int] | None = None,
              given_roles: Mapping[str, str] | None = None, training: bool = True) -> Dataset:
    """Load one path, choosing the loader by what the path is; `given_roles`: a table's column roles given by the
    user (or a retrain's champion), by column name, and `training` False for a test file (`load_table`)."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        if is_text_folder(path):
            frame, labels = read_text_folder(path)
            return Dataset("table", frame, labels, str(path), roles={TEXT_COLUMN: FOLDER_ROLE})
        return load_image_folder(path, image_size)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        if not target:
            raise DataError(f"{path}: a table needs --target, the name of its label column")
        return load_table(path, target, given_roles, training)
    check_file_type(path)
    return load_sequences(path)


def check_file_type(path: Path) -> None:
    """A file kerasflow reads (a table, or sequences), or a `DataError` naming its type and what is read."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in TABLE_SUFFIXES or suffix in SEQUENCE_SUFFIXES:
        return
    hint = "; save a spreadsheet as CSV (in Excel: CSV UTF-8)" if suffix in SPREADSHEET_SUFFIXES else ""
    kind = f"unknown file type {suffix!r}" if suffix else "a file without a type (suffix)"
    raise DataError(f"{path}: {kind}; expected a table (.csv, .tsv or .parquet), sequences (.npz or .ts), or a "
                    f"folder of images or of .txt files{hint}")


def read_table(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, or a `DataError` that says why not (cells of spaces are kept: a label's
    are missing, `load_table`; a feature's as its role says, `pipelines.columns.Role.blanks_empty`)."""
    try:
        if path.suffix.lower() in PARQUET_SUFFIXES:
            frame = pd.read_parquet(path)
        else:
            sep = csv_delimiter(path)
            check_unique_header(path, sep)
            decimal = csv_decimal(path, sep)
            frame = pd.read_csv(path, sep=sep, decimal=decimal, na_values=MISSING_MARKERS)
            frame.attrs["notes"] = [DECIMAL_COMMA_NOTE.format(sep=sep)] if decimal == "," else []
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except Exception as exc:  # parser errors carry the useful line number
        raise DataError(f"{path}: cannot read the table: {exc}") from exc
    if frame.empty:
        raise DataError(f"{path}: the table has no rows")
    return frame


def not_utf8(path: Path) -> DataError:
    """The error for a CSV that is not UTF-8 text, naming the line of its first byte that is not."""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return DataError(f"{path}: not UTF-8 text (byte {raw[exc.start]:#04x} on line {line}, as a file saved as "
                         "Windows-1252 or Latin-1 has); save it as UTF-8 (in Excel: CSV UTF-8)")
    return DataError(f"{path}: not UTF-8 text; save it as UTF-8")


def csv_decimal(path: Path, sep: str) -> str:
    """The CSV's decimal mark: a comma when its columns are not separated by commas and a column of its first
    `SNIFFED_ROWS` rows holds only numbers, some with a decimal comma (Excel's CSV in much of Europe: 14,23;1,71);
    else a point."""
    if sep == ",":
        return "."
    head = pd.read_csv(path, sep=sep, dtype=str, nrows=SNIFFED_ROWS, na_values=MISSING_MARKERS)
    for column in head.columns:
        values = head[column].dropna().str.strip()
        if values.str.fullmatch(DECIMAL_COMMA).any() and values.str.fullmatch(COMMA_NUMBERS).all():
            return ","
    return "."


def check_unique_header(path: Path, sep: str) -> None:
    """A CSV whose header names a column twice is refused (pandas would silently rename the second `name.1`)."""
    header = pd.read_csv(path, nrows=1, header=None, sep=sep).iloc[0].astype(str).tolist()
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise DataError(f"{path}: the header names column(s) {twice} more than once; rename them")


def csv_delimiter(path: Path) -> str:
    """The CSV's separator (comma, semicolon, tab or bar), sniffed from its first lines; comma if unclear."""
    import csv

    with open(path, newline="", errors="replace") as file:
        head = file.read(64 * 1024)
    try:
        return csv.Sniffer().sniff(head, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def load_table(path: Path, target: str, given_roles: Mapping[str, str] | None = None,
               training: bool = True) -> Dataset:
    """Read a CSV or Parquet table; numeric and categorical columns are kept raw. A column of numbers with some
    text is refused unless `given_roles` names another role for it (categorical, text, ...), and a column with no
    value in `training` data unless it is to be dropped (identifier, ignore)."""
    frame = read_table(path)
    if target not in frame.columns:
        raise DataError(f"{path}: no column {shown(target)}; columns are {names(frame.columns)}")
    frame[target] = blanks_missing(frame[target])  # a blank label is a missing one
    check_labelled(path, frame[target])
    check_not_continuous(path, frame[target])
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError(f"{path}: the table has no feature columns besides {target!r}")
    check_feature_columns(path, features, given_roles, training)
    labels = _label_strings(frame[target])
    notes = list(frame.attrs.get("notes", []))
    counts = collections.Counter(labels.tolist())
    alike = _written_alike(counts, counts)
    if alike:
        notes.append(f"labels written alike are different classes here ({alike} but for spaces or capitals)")
    return Dataset("table", features.reset_index(drop=True), labels, str(path), notes=notes)


def check_feature_columns(path: Path | str, features: pd.DataFrame, given_roles: Mapping[str, str] | None,
                          training: bool = True) -> None:
    """Each feature column of `training` data holds a value (unless `given_roles` drops it; a test file's column
    may be empty: the model imputes it) and, given the numeric role, is not numbers with more than stray text (a
    column whose role is inferred is categories then)."""
    given_roles = given_roles or {}
    for column in features.columns:
        role = given_roles.get(str(column))
        if training and role not in DROPPED:
            check_not_empty(path, features[column])
        if role == ColumnRole.NUMERIC:
            check_not_mixed(path, features[column], f"{MIXED_REMEDY}, or if they are categories say so: "
                                                    f"--column-role {column}=categorical")


def check_labelled(path: Path | str, labels: pd.Series) -> None:
    """Every row has a label: the rows without one are named."""
    if labels.isna().any():
        empty = np.flatnonzero(labels.isna().to_numpy())
        more = f" and {len(empty) - LISTED} more" if len(empty) > LISTED else ""
        raise DataError(f"{path}: label column {labels.name!r} is empty on {len(empty)} of {len(labels)} rows: rows "
                        f"{empty[:LISTED].tolist()}{more} (numbered from 0 below the header); label or drop them")


def check_not_continuous(path: Path | str, labels: pd.Series) -> None:
    """kerasflow trains classifiers: a label column of many distinct numbers is refused, saying why."""
    if not pd.api.types.is_numeric_dtype(labels) or pd.api.types.is_bool_dtype(labels):
        return
    distinct = labels.nunique()
    fractional = bool((labels != labels.round()).any())
    if distinct > CONTINUOUS_MIN_VALUES and (fractional or distinct > CONTINUOUS_SHARE * len(labels)):
        raise DataError(
            f"{path}: label column {labels.name!r} looks continuous ({distinct} distinct numbers in {len(labels)} "
            "rows); kerasflow trains classifiers: bin it into classes first (e.g. pandas.qcut(column, 5)) "
            "or choose another --target"
        )


def check_not_empty(path: Path | str, column: pd.Series) -> None:
    """A feature column with no value on any row is refused (a column that is only mostly empty is data)."""
    if blanks_missing(column).isna().all():
        raise DataError(f"{path}: column {column.name!r} is empty on every one of its {len(column)} rows; fill it or "
                        f"leave it out (--column-role {column.name}=ignore)")


def check_not_mixed(path: Path | str, column: pd.Series, remedy: str = MIXED_REMEDY) -> pd.Series:
    """A column taken as numbers (its role given by the user or a champion) whose text is more than stray
    (`pipelines.columns.STRAY_TEXT_SHARE`) is a data error; stray text is read as missing, as role inference
    reads it, and returned (empty when there is none). `remedy` ends the message."""
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return column.iloc[:0]
    values = column.dropna()
    values = values[~missing_marks(values)]  # ".", "?": missing (`pipelines.columns.MISSING_MARK`)
    numbers = pd.to_numeric(values, errors="coerce")
    stray = stray_text(values, numbers)
    if numbers.isna().any() and stray is None:
        bad = values[numbers.isna()]
        raise DataError(
            f"{path}: column {column.name!r} is numeric but {len(bad)} of {len(values)} values are text "
            f"(e.g. {examples(bad)}); {remedy}"
        )
    return values.iloc[:0] if stray is None else stray


def _written_alike(labels, counts: dict[str, int]) -> str:
    """Those of `labels` that are a larger class of `counts` written with other spaces or capitals, as "'low ' is
    'low'" ("" when none is)."""
    def key(label: str) -> str:
        return " ".join(str(label).split()).casefold()

    largest = {}
    for label in sorted(counts, key=counts.get, reverse=True):
        largest.setdefault(key(label), label)
    pairs = [(label, largest[key(label)]) for label in labels if largest[key(label)] != label]
    return ", ".join(f"{shown(label)} is {shown(other)}" for label, other in pairs[:LISTED])


def rows_per_class_needed(test_given: bool) -> int:
    """The fewest rows a class needs in the training data: one each for train, validation and test, or for train
    and validation when a test set is given."""
    return MIN_ROWS_PER_CLASS - test_given


def check_class_sizes(source: Path | str, labels, needed: int) -> None:
    """Every class has `needed` rows (`rows_per_class_needed`), or the classes short of them are few enough rows to
    leave out (`RARE_ROWS_MAX_SHARE`) and none is a larger class written alike (`_written_alike`); else the smallest
    classes are named, with what to do."""
    counts = collections.Counter(_label_strings(labels).tolist())
    small = _too_small(counts, needed)
    if not small:
        return
    alike = _written_alike(small, counts)
    if not alike and _left_out(small, counts):
        return  # `without_small_classes` leaves them out at the split
    raise DataError(
        f"{source}: classes {_listed(small)} have fewer than {needed} rows; each class needs rows for train, "
        "validation and test: " + (f"fix the labels ({alike}), or relabel or drop the rows of the others" if alike
                                   else "relabel or drop their rows")
    )


def without_small_classes(data: Dataset, test: Dataset | None, needed: int) -> tuple[Dataset, Dataset | None]:
    """`data` (and a given `test` set) without the classes too small to split that `check_class_sizes` lets pass:
    few rows of a long tail of classes, which the model then does not know; the training data's notes say so."""
    counts = collections.Counter(_label_strings(data.labels).tolist())
    small = _too_small(counts, needed)
    if not small:
        return data, test
    kept = data.take(np.flatnonzero(~np.isin(_label_strings(data.labels), list(small))))
    rows = sum(small.values())
    note = (f"classes {_listed(small)} have fewer than {needed} rows, too few for train, validation and test: "
            f"their {rows} rows ({rows / len(data):.1%}) were left out, and the model does not know these classes")
    if test is not None:
        tested = np.isin(_label_strings(test.labels), list(small))
        if tested.any():
            note += f"; the test set's {int(tested.sum())} rows of them too"
            test = test.take(np.flatnonzero(~tested))
    kept.notes.append(note)
    return kept, test


def _too_small(counts: Mapping[str, int], needed: int) -> dict[str, int]:
    """The classes of `counts` with fewer than `needed` rows, smallest first."""
    return {label: n for label, n in sorted(counts.items(), key=lambda item: item[1]) if n < needed}


def _left_out(small: Mapping[str, int], counts: Mapping[str, int]) -> bool:
    """Whether the `small` classes are few enough rows to leave out (`RARE_ROWS_MAX_SHARE`), two classes staying."""
    return len(counts) - len(small) >= 2 and sum(small.values()) <= RARE_ROWS_MAX_SHARE * sum(counts.values())


def _listed(counts: Mapping[str, int]) -> str:
    """`{'a': 1, 'b': 2}`, the first `LISTED` of them, and how many more."""
    more = f" and {len(counts) - LISTED} more" if len(counts) > LISTED else ""
    return "{" + ", ".join(f"{shown(label)}: {n}" for label, n in list(counts.items())[:LISTED]) + "}" + more


def _label_strings(labels: pd.Series | np.ndarray) -> np.ndarray:
    values = pd.Series(labels)
    if pd.api.types.is_float_dtype(values) and (values == values.round()).all():
        values = values.astype(np.int64)
    return values.astype(str).to_numpy(dtype=object)


def load_image_folder(path: Path, image_size: tuple[int, int] | None = None) -> Dataset:
    """Load `path/<class>/<image>`; sizes and channels are unified to the most common ones."""
    files, labels = image_files(path)
    images, bad = [], []
    for file in files:
        try:
            images.append(read_image(file))
        except DataError as exc:
            bad.append(str(exc))
    check_no_bad_files(path, bad)
    nested = sum(file.parent != path / label for file, label in zip(files, labels))
    notes = [f"{nested} images in subfolders of class folders were labelled with their class folder"] if nested else []
    modes = collections.Counter(_channels_mode(im) for im in images)
    mode = modes.most_common(1)[0][0]
    if len(modes) > 1:
        notes.append(f"images had mixed channels {dict(modes)}; all converted to {mode}")
    sizes = collections.Counter((im.height, im.width) for im in images)
    height, width = image_size or sizes.most_common(1)[0][0]
    if len(sizes) > 1 or image_size:
        notes.append(f"images resized to {height}x{width} (found sizes {dict(list(sizes.most_common(5)))})")
    arrays = [image_array(im, mode, height, width, file) for im, file in zip(images, files)]
    features = np.stack(arrays).astype(np.float32)
    return Dataset("image", features, np.asarray(labels, dtype=object), str(path), notes)


def image_files(path: Path) -> tuple[list[Path], list[str]]:
    """`path/<class>/<image>`'s image files (nested folders too; hidden ones left out) and their classes, or a
    `DataError`: no class folder, an empty one, or files that are not images."""
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path}: an image folder needs one subfolder per class; found none")
    files, labels, bad = [], [], []
    for class_dir in class_dirs:
        found = sorted(p for p in class_dir.rglob("*") if p.is_file()
                       and not any(part.startswith(".") for part in p.relative_to(class_dir).parts))
        if not found:
            raise DataError(f"{class_dir}: class folder has no images")
        for file in found:
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                bad.append(f"{file} is not an image (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
                continue
            files.append(file)
            labels.append(class_dir.name)
    check_no_bad_files(path, bad)
    return files, labels


def check_image_folder(path: Path, rows_per_class: int | None) -> None:
    """An image folder's files and every image's header (not its pixels: `read_image` decodes them later), and
    with `rows_per_class` its classes (`check_training_labels`): an empty class folder, an unreadable image or one
    class was found 20 s in, after the server's start."""
    files, labels = image_files(path)
    bad = []
    for file in files:
        try:
            read_image(file, header_only=True)
        except DataError as exc:
            bad.append(str(exc))
    check_no_bad_files(path, bad)
    check_training_labels(path, labels, rows_per_class)


def check_no_bad_files(path: Path, bad: list[str]) -> None:
    """A folder's files that cannot be read, why for the first `LISTED`, as one `DataError`; none, nothing."""
    if bad:
        more = f"; and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
        raise DataError(f"{path}: {len(bad)} bad file(s): {'; '.join(bad[:LISTED])}{more}")


def check_training_labels(source: Path | str, labels, rows_per_class: int | None) -> None:
    """With `rows_per_class` (training data; a test file may hold one class), at least two classes of as many rows
    each."""
    if rows_per_class:
        check_classes(source, labels)
        check_class_sizes(source, labels, rows_per_class)


def check_classes(source: Path | str, labels) -> None:
    """The labels name at least two classes."""
    counts = collections.Counter(_label_strings(labels).tolist())
    if len(counts) < 2:
        raise DataError(f"{source}: the labels have one class ({next(iter(counts))!r}); need at least 2")


def _channels_mode(image) -> str:
    return "L" if image.mode in {"L", "1", "I", "I;16", "F"} else "RGB"


def read_image(file: Path, header_only: bool = False):
    """One image file read whole into memory (a PIL image), or a `DataError` naming the file; `header_only`: its
    header read, None returned.

    Truncated and unreadable files, and decompression bombs (more than Pillow's `MAX_IMAGE_PIXELS`, a small file
    that would unpack to gigabytes) are refused before their pixels are decoded.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                if header_only:
                    return None
                image.load()
                return image.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(f"{file}: refused as a decompression bomb ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # PIL raises all four on bad files
        raise DataError(f"{file} cannot be read ({exc})") from None


def image_array(image, mode: str, height: int, width: int, file: Path | str = "an image") -> np.ndarray:
    """One PIL image as float32 [height, width, channels] in `mode` ("L" or "RGB"); `file` names it in errors."""
    try:
        image = image.convert(mode)
    except (ValueError, OSError) as exc:
        raise DataError(f"{file}: cannot convert its {image.mode} pixels to {mode} ({exc})") from None
    if (image.height, image.width) != (height, width):
        image = image.resize((width, height))
    array = np.asarray(image, dtype=np.float32)
    return array[..., None] if array.ndim == 2 else array


SEQUENCE_FORMAT = ("an .npz with x as [N, T, F] (or [N, T]) numbers, or, for sequences of different lengths, x as "
                   "every sequence's steps one after another, [sum of lengths, F], and lengths [N]; y [N] numbers or "
                   "strings")
PICKLE_REFUSED = ("holds Python objects, which are pickles that run code when read, and kerasflow never loads them: "
                  "save {hint}; `kerasflow convert-sequences OLD.npz NEW.npz` converts a file you trust")
PICKLE_HINTS = {"x": "ragged sequences as x = np.concatenate(sequences), lengths = [len(s) for s in sequences]",
                "y": "labels as numbers or strings, np.asarray(y, dtype=str)",
                "lengths": "lengths as integers"}


TS_FORMAT = ("a .ts file as the UCR/UEA archives and aeon write it: @ lines (@classLabel true and the classes), "
             "then @data and one case a line, its values split by commas, its channels by colons, its label last")


def load_sequences(path: Path) -> Dataset:
    """Load sequences and labels from an .npz file in `SEQUENCE_FORMAT` or a .ts file (`read_sequences`)."""
    sequences, labels = read_sequences(path, labelled=True)
    return sequences_dataset(sequences, labels, str(path))


def read_sequences(path: Path, labelled: bool) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray | None]:
    """The sequences and, if `labelled`, the labels of an .npz (`read_sequence_file`) or .ts (`read_ts_file`)."""
    return read_ts_file(path, labelled) if path.suffix.lower() == TS_SUFFIX else read_sequence_file(path, labelled)


def read_ts_file(path: Path, labelled: bool) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray | None]:
    """The sequences ([N, T, F], or a list of [T_i, F] when their lengths differ) and, if `labelled`, the labels of
    a .ts file (`TS_FORMAT`), read by aeon's `load_from_ts_file`: UCR's GunPoint, UEA's JapaneseVowels (ragged)
    and BasicMotions (6 channels) as the archives ship them. A missing value ('?') becomes NaN, which the load
    refuses by sample number. Text only: nothing in it runs."""
    from aeon.datasets import load_from_ts_file

    try:
        x, y = load_from_ts_file(str(path), return_type="auto")
    except UnicodeDecodeError:
        raise not_utf8(path) from None
    except Exception as exc:  # aeon's own words: a bad header, a value that is not a number, a label not declared
        raise DataError(f"{path}: cannot read it as a .ts file ({str(exc).strip() or type(exc).__name__}); "
                        f"expected {TS_FORMAT}") from None
    if len(x) == 0:
        raise DataError(f"{path}: no cases after @data; expected {TS_FORMAT}")
    if labelled and len(y) != len(x):
        raise DataError(f"{path}: the cases have no class labels (@classLabel false); training needs them: "
                        "@classLabel true and the classes, and each case's label after its last colon")
    sequences = np.transpose(x, (0, 2, 1)).astype(np.float32) if isinstance(x, np.ndarray) else \
        [np.asarray(case, dtype=np.float32).T for case in x]  # aeon's [channels, time] -> [time, features]
    return sequences, (np.asarray(y, dtype=str) if labelled else None)


def read_sequence_file(path: Path, labelled: bool) -> tuple[list[np.ndarray] | np.ndarray, np.ndarray | None]:
    """The sequences (a list when ragged) and, if `labelled`, the labels of an .npz in `SEQUENCE_FORMAT`.

    Arrays are read with `allow_pickle=False`: a data file is never code. An object array (the old ragged form)
    is refused with how to convert it.
    """
    check_sequence_file(path)
    with np.load(path, allow_pickle=False) as archive:
        needed = {"x", "y"} if labelled else {"x"}
        missing = needed - set(archive.files)
        if missing:
            raise DataError(f"{path}: missing array(s) {sorted(missing)}; found {archive.files}")
        arrays = {name: _plain_array(archive, name, path) for name in ("x", "y", "lengths")
                  if name in archive.files and (name != "y" or labelled)}
    x, lengths = arrays["x"], arrays.get("lengths")
    if lengths is None:
        return x, arrays.get("y")
    return split_concatenated(x, lengths, path), arrays.get("y")


def check_sequence_file(path: Path) -> None:
    """An .npz of plain arrays, from the headers alone: no member is an object array (a pickle), whether kerasflow
    would read it or not. Cheap enough to run before any work."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                with archive.open(member) as file:
                    version = np.lib.format.read_magic(file)
                    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    _, _, dtype = header(file)
                name = member.removesuffix(".npy")
                if dtype.hasobject:
                    raise DataError(f"{path}: array {name!r} " + PICKLE_REFUSED.format(
                        hint=PICKLE_HINTS.get(name, "only numbers and strings")))
    except DataError:
        raise
    except Exception as exc:  # not a zip, a truncated member, a header numpy cannot parse
        raise DataError(f"{path}: cannot read the .npz file ({exc}); expected {SEQUENCE_FORMAT}") from None


def _plain_array(archive, name: str, path: Path) -> np.ndarray:
    try:
        return archive[name]
    except ValueError as exc:  # numpy: "Object arrays cannot be loaded when allow_pickle=False"
        if "allow_pickle" not in str(exc):
            raise DataError(f"{path}: cannot read array {name!r} ({exc})") from exc
        raise DataError(f"{path}: array {name!r} " + PICKLE_REFUSED.format(hint=PICKLE_HINTS[name])) from None
    except Exception as exc:  # a truncated or corrupt member
        raise DataError(f"{path}: cannot read array {name!r} ({exc})") from exc


def split_concatenated(x: np.ndarray, lengths: np.ndarray, path: Path | str) -> list[np.ndarray]:
    """Ragged sequences from their steps one after another (`x`, [sum of lengths, ...]) and their `lengths`."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer) or (lengths < 1).any():
        raise DataError(f"{path}: lengths must be a 1-D array of positive integers, one per sequence")
    if x.ndim not in (1, 2) or len(x) != int(lengths.sum()):
        raise DataError(f"{path}: with lengths, x must hold every sequence's steps one after another, "
                        f"[{int(lengths.sum())} steps, features]; it has shape {list(x.shape)}")
    return np.split(x, np.cumsum(lengths)[:-1])


def write_sequence_file(path: Path, sequences, labels=None) -> None:
    """Save sequences (an [N, T, F] array or a list of [T_i, F]) and labels in `SEQUENCE_FORMAT`, pickle-free."""
    extra = {} if labels is None else {"y": np.asarray(labels) if np.asarray(labels).dtype != object
                                       else np.asarray(labels, dtype=str)}
    if isinstance(sequences, np.ndarray) and sequences.dtype != object:
        np.savez(path, x=sequences, **extra)
        return
    steps = [np.asarray(s, dtype=np.float32) for s in sequences]
    if len({s.shape[1:] for s in steps}) > 1:
        raise DataError(f"sequences have different shapes per step: {sorted({s.shape[1:] for s in steps})}")
    np.savez(path, x=np.concatenate(steps), lengths=np.asarray([len(s) for s in steps], dtype=np.int64), **extra)


def convert_trusted_sequences(old: Path, new: Path) -> int:
    """Rewrite an old-style .npz (x an object array of ragged sequences) in `SEQUENCE_FORMAT`; how many sequences.

    This unpickles `old`, which runs whatever code it holds: only for a file its user trusts. The one place
    kerasflow ever reads a pickle, and only when asked by name (`kerasflow convert-sequences`).
    """
    if not old.is_file():
        raise DataError(f"{old}: no such file")
    if new.exists():
        raise DataError(f"{new}: already exists; give a new file name")
    if new.suffix.lower() != ".npz":
        raise DataError(f"{new}: the converted file must end in .npz")
    try:
        with np.load(old, allow_pickle=True) as archive:  # the user vouched for this file
            x, y = archive["x"], archive["y"] if "y" in archive.files else None
    except Exception as exc:
        raise DataError(f"{old}: cannot read it as an .npz with x ({exc})") from exc
    sequences = as_series(x)
    write_sequence_file(new, sequences, None if y is None else np.asarray(y).astype(str))
    return len(sequences)


def as_series(x) -> list[np.ndarray]:
    """Each sequence as float32 [time, features]; a 1-D sequence is one feature."""
    sequences = [np.asarray(s, dtype=np.float32) for s in x]
    return [s[:, None] if s.ndim == 1 else s for s in sequences]


def sequences_dataset(x: np.ndarray, y: np.ndarray, source: str) -> Dataset:
    """Check, pad and stack sequences into float32 [N, T, F]; T is the longest sequence."""
    if len(x) == 0:
        raise DataError(f"{source}: no sequences")
    if len(x) != len(y):
        raise DataError(f"{source}: x has {len(x)} sequences but y has {len(y)} labels")
    sequences = as_series(x)
    bad_rank = [i for i, s in enumerate(sequences) if s.ndim != 2]
    if bad_rank:
        raise DataError(f"{source}: sequences {bad_rank[:5]} are not [time, features] arrays")
    non_finite = [i for i, s in enumerate(sequences) if not np.isfinite(s).all()]
    if non_finite:
        more = f" and {len(non_finite) - LISTED} more" if len(non_finite) > LISTED else ""
        raise DataError(f"{source}: {len(non_finite)} of {len(sequences)} sequences hold NaN or inf: samples "
                        f"{non_finite[:LISTED]}{more} (numbered from 0, as in the file); fix or drop them")
    feature_counts = collections.Counter(s.shape[1] for s in sequences)
    if len(feature_counts) > 1:
        expected = feature_counts.most_common(1)[0][0]
        bad = [i for i, s in enumerate(sequences) if s.shape[1] != expected]
        raise DataError(
            f"{source}: sequences must all have the same number of features; most have {expected}, "
            f"but sequences {bad[:5]} have {sorted({sequences[i].shape[1] for i in bad})}"
        )
    lengths = np.asarray([len(s) for s in sequences])
    padded, notes = fit_length(sequences, int(lengths.max()), "length")
    return Dataset("sequence", padded, _label_strings(np.asarray(y)), source, notes, lengths)


def fit_length(sequences: list[np.ndarray], length: int, to: str = TRAINING_LENGTH) -> tuple[np.ndarray, list[str]]:
    """`LENGTH_RULE`: each [T_i, F] sequence as [length, F], zero-padded or cut at the end; notes say how many.

    `to` names the length in the notes ("the training length", "the model's length").
    """
    features = sequences[0].shape[1] if sequences else 0
    fitted = np.zeros((len(sequences), length, features), dtype=np.float32)
    for i, s in enumerate(sequences):
        fitted[i, : min(len(s), length)] = s[:length]
    return fitted, length_notes([len(s) for s in sequences], length, to)


def length_notes(lengths, length: int, to: str = TRAINING_LENGTH) -> list[str]:
    """What `fit_length` says about sequences of `lengths` fitted to `length`."""
    padded = sum(int(n) < length for n in lengths)
    cut = sum(int(n) > length for n in lengths)
    return ([f"{padded} sequences zero-padded at the end to {to} {length}"] if padded else []) + \
           ([f"{cut} sequences cut at the end to {to} {length}"] if cut else [])


def load_bundled(name: str) -> tuple[Dataset, Dataset | None]:
    """Demo datasets that ship with installed packages; nothing is downloaded."""
    from sklearn import datasets

    if name == "digits":
        bunch = datasets.load_digits()
        images = bunch.images.astype(np.float32)[..., None]
        return Dataset("image", images, _label_strings(bunch.target), "sklearn digits"), None
    if name in {"breast_cancer", "wine"}:
        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        labels = np.asarray([bunch.target_names[i] for i in bunch.target], dtype=object)
        return Dataset("table", bunch.data, labels, f"sklearn {name}"), None
    if name == "gunpoint":
        from aeon.datasets import load_gunpoint

        def part(split: str) -> Dataset:
            x, y = load_gunpoint(split=split)  # [N, channels, time]
            return sequences_dataset(np.transpose(x, (0, 2, 1)), y, f"aeon GunPoint ({split})")

        return part("train"), part("test")
    raise DataError(f"unknown bundled dataset {name!r}")


def _matched_test(data: Dataset, test: Dataset) -> Dataset:
    """The test set checked against the training data; test sequences of another length follow `LENGTH_RULE`."""
    if data.kind != test.kind:
        raise _other_kind(test.source, test.kind, data.kind)
    if data.kind == "sequence":
        features, test_features = data.features.shape[2], test.features.shape[2]
        if test_features != features:
            raise DataError(f"{test.source}: test sequences have {test_features} feature(s) per step, "
                            f"training sequences {features}")
        length = data.features.shape[1]
        return test if test.features.shape[1] == length else test.with_length(length)
    if data.kind != "table" and data.features.shape[1:] != test.features.shape[1:]:
        raise DataError(
            f"{test.source}: test samples have shape {test.features.shape[1:]}, "
            f"training samples {data.features.shape[1:]}"
        )
    return test


def split_dataset(
    data: Dataset, test: Dataset | None, *, test_fraction: float, val_fraction: float, seed: int
) -> Splits:
    """Stratified split with a seed; a given test set replaces the test fraction.

    Given test sequences of another length follow `LENGTH_RULE`; another feature count is a `DataError`.
    """
    needed = rows_per_class_needed(test is not None)
    check_classes(data.source, data.labels)
    check_class_sizes(data.source, data.labels, needed)
    data, test = without_small_classes(data, test, needed)
    counts = collections.Counter(data.labels.tolist())
    if test is not None:
        test = _matched_test(data, test)
        unseen = sorted(set(test.labels.tolist()) - set(counts))
        if unseen:
            raise _unseen_labels(test.source, unseen)
    index = np.arange(len(data))
    if test is None:
        index, test_index = _stratified(index, data.labels, test_fraction, seed, data.source)
        test = data.take(test_index)
    train_index, val_index = _stratified(index, data.labels[index], val_fraction, seed, data.source)
    return Splits(data.take(train_index), data.take(val_index), test, data.class_names)


def _stratified(index: np.ndarray, labels: np.ndarray, fraction: float, seed: int, source: str):
    n_classes = len(set(labels.tolist()))
    n_holdout = max(int(round(fraction * len(index))), n_classes)
    if len(index) - n_holdout < n_classes:
        raise DataError(f"{source}: {len(index)} rows are too few to split {n_classes} classes")
    return train_test_split(index, test_size=n_holdout, stratify=labels, random_state=seed)
