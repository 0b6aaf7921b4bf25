"""Validate step: GX suites on every split, built from the training split or taken from the champion."""

from __future__ import annotations

from dataclasses import dataclass

import data_checks
from pipelines.errors import ValidationFailed
from pipelines.load import Dataset, Splits
from pipelines.columns import text_columns
from pipelines.text.profile import profile


@dataclass
class Validation:
    """The suite (saved later beside the model) and one report per checked split.

    Attributes:
        suite: the great-expectations suite the splits were checked against.
        reports: one `ValidationReport` per split (train, val, test).
    """

    suite: object
    reports: list[data_checks.ValidationReport]

    def to_markdown(self) -> str:
        return "\n\n".join(report.to_markdown() for report in self.reports)


def validate_splits(splits: Splits, suite_name: str, classes: list[str] | None = None) -> Validation:
    """Fail before any training if a split breaks the suite built from the training split.

    `classes` widens the suite's label set beyond the training split's, for a
    fine-tuned model that still knows classes this data lacks.
    """
    suite = data_checks.build_suite(_profile(splits.train), suite_name, classes)
    return _check(splits, suite, suite_name, "", "Data validation failed; nothing was trained.",
                  same_data=data_checks.row_rules_only(suite))


def validate_against(splits: Splits, suite, suite_source: str) -> Validation:
    """Check every split of new data against an existing suite (the champion's); fail before any training."""
    return _check(splits, suite, suite_source, "new ",
                  f"New data failed the expectations of {suite_source}; nothing was trained or promoted.")


def _check(splits: Splits, suite, suite_name: str, prefix: str, failure: str, same_data=None) -> Validation:
    """Each split against `suite`; with `same_data` (the suite's row rules), a split drawn at random from the file
    the suite was built from meets only those: its statistical checks would test the draw, not the data."""
    reports = []
    for part, dataset in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        drawn = same_data is not None and part != "train" and dataset.source == splits.train.source
        report = data_checks.validate_frame(_profile(dataset), same_data if drawn else suite)
        report.suite_name = f"{suite_name} on {prefix}{part} ({len(dataset)} rows, {dataset.source})"
        reports.append(report)
    validation = Validation(suite, reports)
    if not all(report.success for report in reports):
        raise ValidationFailed(f"{failure}\n\n{validation.to_markdown()}")
    return validation


def _profile(dataset: Dataset):
    return profile(dataset.kind, dataset.features, dataset.labels, text_columns(dataset.roles or {}))
