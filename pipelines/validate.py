"""Validate step: GX suites on every split, built from the training split or taken from the champion."""

from __future__ import annotations

from dataclasses import dataclass

import data_checks
from pipelines.errors import ValidationFailed
from pipelines.load import Dataset, Splits
from pipelines.columns import text_columns
from pipelines.text.profile import profile


PARTS = ("train", "val", "test")
OWN_RULES_NOTE = "value ranges and missing-value shares not checked: they are drawn from these rows"


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

    The training split, and a split drawn at random from the same file, meet the suite's row rules
    (`data_checks.row_rules_only`): the training rows meet its statistical checks by construction (their own value
    ranges and missing-value shares), and a random part of them would test the draw, not the data. The splits held
    to the same rules are checked in one batch (a 1,504-column table's three splits took 55 s as two). A split from
    another file meets every expectation. `classes` widens the suite's label set beyond the training split's, for a
    fine-tuned model that still knows classes this data lacks.
    """
    profiles = _profiles(splits)
    suite = data_checks.build_suite(profiles["train"], suite_name, classes)
    drawn = data_checks.row_rules_only(suite)
    rules = {"train": drawn, **{part: drawn if dataset.source == splits.train.source else suite
                                for part, dataset in (("val", splits.val), ("test", splits.test))}}
    return _check(splits, profiles, suite, rules, suite_name, "", "Data validation failed; nothing was trained.",
                  notes={"train": OWN_RULES_NOTE})


def validate_against(splits: Splits, suite, suite_source: str) -> Validation:
    """Check every split of new data against an existing suite (the champion's); fail before any training."""
    return _check(splits, _profiles(splits), suite, dict.fromkeys(PARTS, suite), suite_source, "new ",
                  f"New data failed the expectations of {suite_source}; nothing was trained or promoted.")


def _check(splits: Splits, profiles: dict, suite, rules: dict, suite_name: str, prefix: str, failure: str,
           notes: dict[str, str] | None = None) -> Validation:
    """Each split's profile (`profiles`, part -> frame) against its `rules` (part -> suite); splits held to the same
    rules are checked together (`data_checks.validate_frames`). `notes`: a few words for a part's report line."""
    parts = _parts(splits)
    reports = {}
    for kept in {id(r): r for r in rules.values()}.values():
        held = [part for part in parts if rules[part] is kept]
        reports.update(zip(held, data_checks.validate_frames([profiles[part] for part in held], kept)))
    for part, report in reports.items():
        note = f"; {notes[part]}" if notes and part in notes else ""
        report.suite_name = f"{suite_name} on {prefix}{part} ({len(parts[part])} rows, {parts[part].source}{note})"
    validation = Validation(suite, [reports[part] for part in parts])
    if not all(report.success for report in validation.reports):
        raise ValidationFailed(f"{failure}\n\n{validation.to_markdown()}")
    return validation


def _parts(splits: Splits) -> dict[str, Dataset]:
    return dict(zip(PARTS, (splits.train, splits.val, splits.test)))


def _profiles(splits: Splits) -> dict:
    """Each split's profile (`pipelines.text.profile`), made once: it builds the suite and is checked against it
    (600 images of 224 x 224 took 1-6 s to profile)."""
    return {part: profile(dataset.kind, dataset.features, dataset.labels, text_columns(dataset.roles or {}))
            for part, dataset in _parts(splits).items()}
