"""What a training or retraining run returns: the finished model and everything its report shows.

Step results (`SearchResult`, `FineTuneResult`, `Evaluation`, `ExportResult`,
...) live with their steps; this module composes them. Models stay on disk:
a result holds paths and small records, and `summary()` gives the JSON-able
part that flows return and the CLI prints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from data_checks.drift import DriftReport
from models import describe
from models.transfer import TransferBase
from pipelines.budget import RunBudget
from pipelines.config import RetrainConfig, TrainConfig
from pipelines.evaluate import Evaluation
from pipelines.export.records import ExportResult
from pipelines.finetune import FineTuneResult
from pipelines.preprocess import Preprocessing
from pipelines.promotion import Decision
from pipelines.registry import ModelVersion
from pipelines.search.records import SearchResult
from pipelines.validate import Validation


@dataclass
class Candidate:
    """A trained model, scored on the test split and exported, with what re-export and the next retrain need.

    Attributes:
        run_dir: the run folder `pipelines.runs.finish_candidate` wrote into.
        model_path: the trained Keras model (`finetuned.keras`).
        prep: its preprocessing (also saved as `preprocessing.json`).
        hyperparameters: its architecture and optimiser values (`family` among them).
        training: how it was trained (history, epochs, seconds).
        evaluation: its scores on the test split.
        export: the exported files and their parity checks.
        trained_on: fingerprint of the raw data it learnt from (rows, labels, sha256).
        search_evaluation: the search's best checkpoint on the same test split, when there was a search.
    """

    run_dir: Path
    model_path: Path
    prep: Preprocessing
    hyperparameters: dict
    training: FineTuneResult
    evaluation: Evaluation
    export: ExportResult
    trained_on: dict
    search_evaluation: Evaluation | None = None

    @property
    def family(self) -> str:
        """The family, or "ensemble of N (families)"."""
        return describe(self.hyperparameters)


@dataclass
class RunResult:
    """A training run: the searched, fine-tuned and exported model, and the numbers the report shows.

    Attributes:
        config: the options it ran with.
        splits: rows per split; data_notes: what loading and the search schedule changed.
        validation: the great-expectations reports of every split.
        search: the architecture search.
        candidate: the fine-tuned model, evaluated and exported (also reachable as `run_dir`, `finetune`,
            `evaluation`, `search_evaluation`, `export`, `prep`, `data_summary`).
        step_seconds: wall time per step; report_path: report.md.
        registered: the registry version, when registered; devices: where it trained.
        budget: how the run's minutes were split between search and fine-tune, and used.
        base: the pretrained base the search could start from (`--pretrained`, `--backbone`), if any.
    """

    config: TrainConfig
    splits: dict[str, int]
    data_notes: list[str]
    validation: Validation
    search: SearchResult
    candidate: Candidate
    step_seconds: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None
    registered: ModelVersion | None = None
    devices: str = ""
    budget: RunBudget | None = None
    base: TransferBase | None = None

    @property
    def run_dir(self) -> Path:
        return self.candidate.run_dir

    @property
    def finetune(self) -> FineTuneResult:
        return self.candidate.training

    @property
    def evaluation(self) -> Evaluation:
        return self.candidate.evaluation

    @property
    def search_evaluation(self) -> Evaluation:
        return self.candidate.search_evaluation

    @property
    def export(self) -> ExportResult:
        return self.candidate.export

    @property
    def prep(self) -> Preprocessing:
        return self.candidate.prep

    @property
    def data_summary(self) -> dict:
        return self.candidate.trained_on

    def summary(self) -> dict:
        """The flow's return value and what the CLI prints."""
        return {"run_dir": str(self.run_dir), "family": describe(self.search.best_hyperparameters),
                "test": self.evaluation.headline(), "export": self.export.summary(),
                "report": str(self.report_path),
                "registered": self.registered.ref if self.registered else None,
                "champion": bool(self.registered and self.registered.record["decision"]["promoted"])}


@dataclass
class Challenger:
    """The model a retrain puts up against the champion.

    Attributes:
        mode: finetune (warm start from the champion) or search (a fresh search).
        candidate: the trained, evaluated and exported model.
        replay_rows: earlier samples mixed into a fine-tune.
        search: the search of a search challenger.
    """

    mode: str
    candidate: Candidate
    replay_rows: int = 0
    search: SearchResult | None = None


@dataclass
class RetrainResult:
    """A retrain: champion vs challenger on the same fresh holdout, and what the registry did about it.

    Attributes:
        config: the retrain's options; champion: the champion's ref before the retrain (NAME@vNNNN).
        mode, mode_reason: how the challenger was built, and why.
        run_dir: the retrain's run folder.
        validation: new data against the champion's suite; drift: new data against its training data.
        challenger: the challenger model.
        champion_evaluation, challenger_evaluation: both on the holdout, over the champion's classes.
        decision: promote or keep, with the reason.
        split_sizes: rows per split of the new data.
        version: the challenger's registry version; champion_now: the champion after the decision.
        step_seconds: wall time per step; report_path: retrain_report.md.
    """

    config: RetrainConfig
    champion: str
    mode: str
    mode_reason: str
    run_dir: Path
    validation: Validation
    drift: DriftReport
    challenger: Challenger
    champion_evaluation: Evaluation
    challenger_evaluation: Evaluation
    decision: Decision
    split_sizes: dict[str, int]
    version: ModelVersion | None = None
    champion_now: str = ""
    step_seconds: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None

    def summary(self) -> dict:
        """The flow's return value and what the CLI prints."""
        return {"run_dir": str(self.run_dir), "mode": self.mode, "mode_reason": self.mode_reason,
                "champion_before": self.champion, "version": self.version.ref if self.version else None,
                "promoted": self.decision.promote, "reason": self.decision.reason,
                "champion": f"{self.config.name}@{self.champion_now}", "decision": asdict(self.decision),
                "drift": self.drift.summary(), "drifted": [c.column for c in self.drift.drifted],
                "export": self.challenger.candidate.export.summary(), "report": str(self.report_path)}
