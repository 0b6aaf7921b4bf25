"""report.md: what a reviewer reads first, and the Prefect report artifact."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from models import member_hyperparameters
from models.transfer import TransferBase
from pipelines.errors import names
from pipelines.export.model_card import variant_table
from pipelines.export.records import ExportResult
from pipelines.export.variant_plot import PLOT_FILE
from pipelines.results import RetrainResult, RunResult
from pipelines.search.anytime import ANYTIME_FILE, best_so_far
from pipelines.search.fidelity import fidelity_text
from pipelines.search.records import SearchResult, TrialStatus
from pipelines.search.selection import FOLDS, SMALL_VALIDATION_ROWS, TIE_BREAK
from pipelines.transfer import lineage

REPORT_FILES = ("report.md", "retrain_report.md")
LISTED_CLASSES = 10  # classes named in a note; the rest counted


def write_report(result: RunResult, path: Path) -> Path:
    path.write_text(render_report(result))
    return path


def columns_table(roles: dict[str, dict]) -> list[str]:
    """A table's columns, each with its role and why (`pipelines.columns`); nothing for images and sequences."""
    if not roles:
        return []
    rows = [f"| `{name}` | {r['role']} | {r['why']} |" for name, r in roles.items()]
    return ["", "Columns (`--column-role NAME=ROLE` overrides):", "", "| column | role | why |", "|---|---|---|", *rows]


def render_report(result: RunResult) -> str:
    search, evaluation = result.search, result.evaluation
    best = search.best_hyperparameters
    best_single = member_hyperparameters(best)[0]
    lines = [
        f"# kerasflow run: {result.config.model_name}",
        "",
        f"Run folder: `{result.run_dir}`",
        "",
        "## Data",
        f"- Source: {result.config.dataset or result.config.data}",
        f"- Split sizes: {', '.join(f'{k} {v}' for k, v in result.splits.items())} (test never seen by search or fine-tuning)",
        *[f"- {note}" for note in result.data_notes],
        *columns_table(result.prep.roles),
        "",
        "## Validation (great-expectations, suite in `expectations.json`)",
        result.validation.to_markdown(),
        "",
        "## Search",
        *([f"- Run {result.budget.describe()}"] if result.budget else []),
        f"- Tuner {result.config.tuner}, objective {search.objective}, "
        f"{len(search.trials)} trials in {search.seconds:.0f} s"
        + (f" ({search.resumed_trials} resumed from an earlier run)" if search.resumed_trials else "")
        + (" — stopped by the budget" if search.budget_spent else ""),
        f"- Devices: {result.devices}",
        *_worker_lines(search),
        f"- Families searched: {', '.join(search.families)}",
        *([f"- Pretrained base offered (family transfer): {result.base.describe()}; "
           + ("the chosen model starts from it" if lineage(best) else "the search chose to train from scratch")]
          if result.base else []),
        *[f"- Skipped {family}: {why}" for family, why in search.skipped_families.items()],
        f"- Trials by status: {_count(t.status for t in search.trials)}; by family: {_count(t.family for t in search.trials)}",
        *_subsample_lines(search, result.splits.get("train", 0), result.finetune),
        *_fidelity_lines(search, result.splits.get("train", 0)),
        _selection_line(search),
        *_anytime_lines(search),
        f"- Best trial {search.best_trial_id}: {best_single['family']}, {search.objective} {search.best_val_score:.4f}",
        *[f"- {'Best hyperparameters' if i == 0 else f'Member {i + 1}'}: `{compact(values)}`"
          for i, values in enumerate(member_hyperparameters(best))],
        *([f"- Choice: {search.choice}"] if search.choice else []),
        *([_ensemble_line(search.ensemble)] if search.ensemble else []),
        *([f"- Mobile budget: {search.mobile_budget}; architectures over it were not trained "
           f"({sum(t.status == TrialStatus.OVER_BUDGET for t in search.trials)} trials)"] if search.mobile_budget else []),
        "",
        "![search frontier](search_frontier.png)",
        f"![best score so far]({ANYTIME_FILE})",
        "",
        "## Test scores",
        "| model | accuracy | balanced acc. | macro precision | macro recall | macro F1 |",
        "|---|---|---|---|---|---|",
        *([_score_row("search best", result.search_evaluation)]
          if result.search_evaluation and not result.finetune.search_model_kept else []),
        _score_row(_shipped_row(result.finetune), evaluation),
        *_unscored_line(evaluation),
        "",
        f"### Per class ({'shipped' if result.finetune.search_model_kept else 'fine-tuned'})",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
          for name, c in evaluation.per_class.items()],
        "",
        "![confusion matrix](confusion_matrix.png)",
        *([] if result.finetune.not_started else ["![learning curves](learning_curves.png)"]),
        "",
        *informative_tokens_section(result),
        *export_section(result.export),
        *step_seconds_section(result.step_seconds),
    ]
    return "\n".join(lines)


INFORMATIVE_TOKENS = 10


def informative_tokens_section(result: RunResult) -> list[str]:
    """Per class, the tokens with the largest TF-IDF coefficients, when the chosen model is linear on text."""
    if not result.prep.text_columns or result.candidate.model_path is None:
        return []
    from models.saving import load_model
    from models.text import informative_tokens

    model = load_model(result.candidate.model_path)
    top = informative_tokens(model, result.prep.tokenizer["vocabulary"], result.prep.class_names, INFORMATIVE_TOKENS)
    if not top:
        return []
    return ["### Most informative tokens per class (largest TF-IDF coefficients of the linear model)",
            "| class | tokens |", "|---|---|", *[f"| {name} | {', '.join(top[name])} |" for name in
                                                result.prep.class_names if name in top], ""]


def _subsample_lines(search: SearchResult, train_rows: int, finetune) -> list[str]:
    seen = [t.rows for t in search.trials if t.rows]
    if search.cross_validated or not seen or min(seen) >= train_rows:
        return []
    rows = f"{min(seen):,} rows each" if min(seen) == max(seen) else f"{min(seen):,} to {max(seen):,} rows"
    final = ("the chosen model was fine-tuned on every row" if not finetune.search_model_kept
             else "the chosen model ships as its trial trained it (see the fine-tune's note)")
    return [f"- Large training set ({train_rows:,} rows): hyperband's trials saw {rows}, a stratified share equal "
            f"to their share of the epochs (`--subsample-from`); {final}"]


def _fidelity_lines(search: SearchResult, train_rows: int) -> list[str]:
    text = fidelity_text(search.fidelity, train_rows)
    return [f"- Trial training ({search.fidelity}): {text}"] if text else []


def _anytime_lines(search: SearchResult) -> list[str]:
    """When the best score so far was set, in the search's time (`pipelines.search.anytime`)."""
    curve = best_so_far(search.trials)
    if not curve:
        return []
    steps = "; ".join(f"{score:.4f} at {seconds:.0f} s (trial {trial})" for seconds, score, trial in curve)
    return [f"- Best score so far: {steps}"]


def _ensemble_line(ensemble) -> str:
    members = f"- Ensemble: trials {', '.join(ensemble.members)} averaged into one model"
    if ensemble.why:
        return (f"{members}: {ensemble.why}; held-out score {ensemble.score:.4f} against {ensemble.single_score:.4f} "
                f"for the search's own choice")
    return (f"{members}; held-out score {ensemble.score:.4f} against {ensemble.single_score:.4f} for the best trial "
            f"alone")


def _selection_line(search) -> str:
    if search.cross_validated:
        return (f"- Selection: {FOLDS}-fold cross-validation on train+val (validation split under "
                f"{SMALL_VALIDATION_ROWS} rows); score = out-of-fold {search.objective.removeprefix('val_')} "
                f"- {TIE_BREAK} x out-of-fold log loss (breaks ties)")
    if search.scored_rows:
        return (f"- Selection: {search.objective} on a stratified {search.scored_rows:,} rows of the validation split "
                "(`--subsample-from`), the same rows for every trial")
    return f"- Selection: {search.objective} on the validation split"


def compact(values: dict) -> str:
    """`cnn: blocks=2, filters=32, dropout=0.1, lr=0.00123`: the family once, its own prefix off each name."""
    family = values.get("family", "")

    def name(key: str) -> str:
        return "lr" if key == "learning_rate" else key.removeprefix(f"{family}_")

    def text(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    values = {k: TransferBase.from_json(v).name if k == "transfer_base" else v for k, v in values.items()}

    rest = ", ".join(f"{name(k)}={text(v)}" for k, v in values.items() if k != "family")
    return f"{family}: {rest}" if family else rest


def _worker_lines(search: SearchResult) -> list[str]:
    if not search.workers:
        return []
    return [f"- {len(search.workers)} parallel workers (keras-tuner chief oracle + Dask): "
            + "; ".join(f"{w.tuner_id} on {w.host} pid {w.pid}, {len(w.trials)} trials, {w.devices}"
                        for w in search.workers)]


def export_section(export: ExportResult) -> list[str]:
    """The export table; `kerasflow export` rewrites just this section of an existing report."""
    recommended = export.recommended
    return [
        "## Export",
        f"- Files in `export/`: {', '.join(sorted(export.files))}",
        "- TFLite variants use builtin ops only, checked on the test split with the LiteRT interpreter; "
        f"tolerance {100 * export.tolerance:.1f} accuracy points. Recommended: "
        + (f"**{recommended.variant}** (`{recommended.file}`)" if recommended else "none — every variant lost too much"),
        "",
        *variant_table(export),
        "",
        f"![TFLite variants: accuracy against size](export/{PLOT_FILE})",
        "",
        "App-side details (tensors, int8 scale/zero-point, vocabularies): `export/model_spec.json`; "
        "model card: `export/MODEL_CARD.md`.",
        "",
    ]


def replace_export_section(report_path: Path, export: ExportResult) -> None:
    """After a re-export, swap the report's Export section for the new one (nothing else changes)."""
    if not report_path.exists():
        return
    text = report_path.read_text()
    section = "\n".join(export_section(export))
    updated, count = re.subn(r"## Export\n.*?(?=\n## |\Z)", lambda _: section.rstrip("\n") + "\n", text, flags=re.S)
    report_path.write_text(updated if count else text.rstrip("\n") + "\n\n" + section)


def step_seconds_section(seconds: dict[str, float]) -> list[str]:
    return ["## Step seconds", "| step | seconds |", "|---|---|",
            *[f"| {name} | {secs:.1f} |" for name, secs in seconds.items()], ""]


def _shipped_row(finetune) -> str:
    """The scores table's name for the shipped model: the fine-tuned one, or the search's in its place."""
    if not finetune.search_model_kept:
        return f"fine-tuned ({finetune.epochs} epochs)"
    if finetune.fitted_by_search:
        return "search best, shipped (fitted on every row by the search)"
    return f"search best, shipped (the fine-tune was {'not started' if finetune.not_started else 'cut short'})"


def _unscored_line(e) -> list[str]:
    """A note under the scores when the test split lacks a class the model knows (a test file may)."""
    if not e.unscored_classes:
        return []
    absent = e.unscored_classes
    listed = names(absent[:LISTED_CLASSES]) + (f" and {len(absent) - LISTED_CLASSES} more"
                                                if len(absent) > LISTED_CLASSES else "")
    return ["", f"The test split has no rows of {len(absent)} of the {len(e.class_names)} classes, and the model "
                f"predicted none of them ({listed}): the macro scores average the others."]


def _score_row(name: str, e) -> str:
    return (f"| {name} | {e.accuracy:.4f} | {e.balanced_accuracy:.4f} | {e.macro_precision:.4f} | "
            f"{e.macro_recall:.4f} | {e.macro_f1:.4f} |")


def _count(values) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(Counter(values).items()))


def write_retrain_report(result: RetrainResult, path: Path) -> Path:
    path.write_text(render_retrain_report(result))
    return path


def render_retrain_report(result: RetrainResult) -> str:
    """Champion vs challenger, drift and the decision, for the run folder, the registry and the Prefect UI."""
    decision, challenger = result.decision, result.challenger
    model = challenger.candidate
    champion_eval, challenger_eval = result.champion_evaluation, result.challenger_evaluation
    verdict = "**promoted**" if decision.promote else "**rejected** (champion kept)"
    registered = (f"Registered as **{result.version.ref}**; champion now **{result.config.name}@{result.champion_now}**"
                  if result.version else "Registration follows this report.")
    lines = [
        f"# kerasflow retrain: {result.config.name}",
        "",
        "## Decision",
        f"- Challenger {verdict}: {decision.reason}",
        f"- {registered}",
        f"- Champion before: {result.champion}; challenger mode **{result.mode}** ({result.mode_reason})",
        f"- Run folder: `{result.run_dir}`",
        "",
        f"## Champion vs challenger on the same fresh holdout ({champion_eval.n_test} rows of the new data)",
        "| model | accuracy | balanced acc. | macro precision | macro recall | macro F1 |",
        "|---|---|---|---|---|---|",
        _score_row(f"champion {result.champion}", champion_eval),
        _score_row(f"challenger ({result.mode})", challenger_eval),
        "",
        "### Recall per class",
        "| class | support | champion | challenger | drop |",
        "|---|---|---|---|---|",
        *[f"| {name} | {scores['support']} | {scores['recall']:.3f} | "
          f"{challenger_eval.per_class[name]['recall']:.3f} | "
          f"{decision.recall_drops.get(name, 0.0):+.3f}{' **over limit**' if decision.recall_drops.get(name, 0) > decision.max_recall_drop else ''} |"
          for name, scores in champion_eval.per_class.items()],
        "",
        f"Rule: promote when {decision.metric} improves by at least {decision.min_improvement:+.4f} and no class "
        f"with holdout rows loses more than {decision.max_recall_drop:.3f} recall.",
        "",
        "![challenger confusion matrix](confusion_matrix.png)",
        "",
        "## Drift against the champion's training data",
        result.drift.to_markdown(),
        "",
        "## Validation against the champion's suite",
        result.validation.to_markdown(),
        "",
        "## Challenger",
        f"- New data split: {', '.join(f'{k} {v}' for k, v in result.split_sizes.items())}; "
        f"fingerprint `{model.trained_on.get('sha256', '')[:16]}`",
        f"- Family {model.family}, {model.training.epochs} epochs"
        + (f", {challenger.replay_rows} replayed earlier samples" if challenger.replay_rows else ""),
        *([f"- Search: {len(challenger.search.trials)} trials"
           + (f" ({challenger.search.resumed_trials} resumed from an interrupted run)"
              if challenger.search.resumed_trials else "")] if challenger.search else []),
        "",
        *export_section(model.export),
        *step_seconds_section(result.step_seconds),
    ]
    return "\n".join(lines)
