"""Great Expectations suites: built from a data profile, saved as JSON, re-run on new data."""

from data_checks.suite import (
    LABEL_COLUMN,
    ValidationReport,
    build_suite,
    load_suite,
    profile_frame,
    row_rules_only,
    save_suite,
    validate_frame,
    validate_frames,
    without_labels,
)

__all__ = ["LABEL_COLUMN", "ValidationReport", "build_suite", "load_suite", "profile_frame",
           "row_rules_only", "save_suite", "validate_frame", "validate_frames", "without_labels"]
