"""Errors a user can act on.

Every error raised for bad input is a `KerasflowError` whose message names
the file, column or sample at fault; the CLI prints it without a traceback.
A value quoted from the data goes through `shown`, so one line stays one
readable line whatever the data holds (a 100,000-character cell, say).
"""

SHOWN_CHARS = 40  # how much of a data value an error message quotes


def shown(value) -> str:
    """`repr(value)`, cut to `SHOWN_CHARS` characters with how long it was."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}… ({len(text):,} characters)"


def names(values) -> str:
    """Column or class names for a message: each `shown` when it is long, comma-separated."""
    return ", ".join(str(v) if len(str(v)) <= SHOWN_CHARS else shown(v) for v in values)


class KerasflowError(Exception):
    """Base class for errors caused by the user's data or options."""


class DataError(KerasflowError):
    """The data cannot be loaded or split as given."""


class ValidationFailed(KerasflowError):
    """The data broke one or more expectations of its suite."""

    def __init__(self, report: str):
        super().__init__(report)
        self.report = report


class SearchFailed(KerasflowError):
    """No trial of the architecture search produced a usable model."""


class ExportError(KerasflowError):
    """A model cannot be exported as asked: a bad option, an incomplete run folder, a non-builtin op."""


class RegistryError(KerasflowError):
    """The model registry is missing something asked for, or a file in it is not what kerasflow wrote."""


class RegistryBusy(RegistryError):
    """Another process is changing the same model (a retrain, a promotion); nothing was done."""


class DriftDetected(KerasflowError):
    """New data moved too far from the champion's training data for a fine-tune; the report says where."""

    def __init__(self, report: str):
        super().__init__(report)
        self.report = report
