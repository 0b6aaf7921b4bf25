"""Validate step: build the GX suite from the training split, check every split against it."""

from __future__ import annotations

from dataclasses import dataclass

import data_checks
from pipelines.errors import ValidationFailed
from pipelines.load import Dataset, Splits


@dataclass
class Validation:
    """The suite (saved later beside the model) and one report per checked split."""

    suite: object
    reports: list[data_checks.ValidationReport]

    def to_markdown(self) -> str:
        return "\n\n".join(report.to_markdown() for report in self.reports)


def validate_splits(splits: Splits, suite_name: str) -> Validation:
    """Fail before any training if a split breaks the suite built from the training split."""
    suite = data_checks.build_suite(_profile(splits.train), suite_name)
    reports = []
    for part, dataset in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        report = data_checks.validate_frame(_profile(dataset), suite)
        report.suite_name = f"{suite_name} on {part} ({len(dataset)} rows, {dataset.source})"
        reports.append(report)
    validation = Validation(suite, reports)
    if not all(report.success for report in reports):
        raise ValidationFailed("Data validation failed; nothing was trained.\n\n" + validation.to_markdown())
    return validation


def _profile(dataset: Dataset):
    return data_checks.profile_frame(dataset.kind, dataset.features, dataset.labels)
