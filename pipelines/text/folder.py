"""A folder of texts: one subfolder of `.txt` files per class, read as a table with one text column.

Files are read as UTF-8 (a byte-order mark is dropped). A file in another
encoding is refused, naming it: guessing an encoding would give an app's
tokenizer different tokens than the model learnt from. Re-save such files as
UTF-8 (`iconv -f latin1 -t utf-8`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.columns import ColumnRole, Role
from pipelines.errors import DataError

TEXT_SUFFIX = ".txt"
TEXT_COLUMN = "text"  # the column a folder's texts become
ENCODING = "utf-8-sig"  # UTF-8; a leading byte-order mark is not text
FOLDER_ROLE = Role(ColumnRole.TEXT, "the contents of the .txt files")


def is_text_folder(path: Path) -> bool:
    """Whether `path` is a folder whose class subfolders hold `.txt` files (and nothing else that is visible)."""
    files = list(text_files(path))
    return bool(files) and all(f.suffix.lower() == TEXT_SUFFIX for f in files)


def text_files(folder: Path):
    """Every visible file under `folder`, sorted, at any depth."""
    return sorted(p for p in folder.rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def read_text(file: Path) -> str:
    """One file's text, or a `DataError` naming the file when it is not UTF-8."""
    try:
        return file.read_bytes().decode(ENCODING)
    except UnicodeDecodeError as exc:
        raise DataError(f"{file}: not UTF-8 text (byte {exc.start}: {exc.reason}); re-save it as UTF-8, e.g. "
                        f"iconv -f latin1 -t utf-8") from None


def read_text_folder(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """`path/<class>/<file>.txt` as (a frame of one column, `TEXT_COLUMN`; the labels: the class folders' names)."""
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path}: a text folder needs one subfolder per class; found none")
    texts, labels = [], []
    for class_dir in class_dirs:
        files = text_files(class_dir)
        if not files:
            raise DataError(f"{class_dir}: class folder has no .txt files")
        other = [f for f in files if f.suffix.lower() != TEXT_SUFFIX]
        if other:
            raise DataError(f"{other[0]}: not a .txt file; a text folder holds only .txt files")
        texts += [read_text(f) for f in files]
        labels += [class_dir.name] * len(files)
    return pd.DataFrame({TEXT_COLUMN: texts}), np.asarray(labels, dtype=object)


def read_unlabelled_folder(folder: Path) -> tuple[pd.DataFrame, list[str]]:
    """Texts to score: every `.txt` under `folder` (any depth) as a frame of `TEXT_COLUMN`, and the files' names."""
    files = [f for f in text_files(folder) if f.suffix.lower() == TEXT_SUFFIX]
    if not files:
        raise DataError(f"{folder}: no .txt files in it or its subfolders")
    return pd.DataFrame({TEXT_COLUMN: [read_text(f) for f in files]}), [str(f.relative_to(folder)) for f in files]
