"""`kerasflow schedule`: retrain any registered model on a schedule, as a Prefect deployment of `kerasflow-retrain`.

A schedule is a deployment named `retrain-NAME` whose parameters are a
`RetrainConfig` (paths made absolute, so a worker may run anywhere). It goes
to a process work pool (created if missing; `prefect worker start --pool
kerasflow` runs it) or is served by this process (`serve`, no pool needed).
The entrypoint is the module path `flows.retrain.retrain_flow`: any machine
with kerasflow installed can run it. `deployments/prefect.yaml` is the same
thing written by hand.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from prefect import serve
from prefect.client.orchestration import get_client
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron, Interval

from flows.retrain import retrain_flow
from pipelines.config import RetrainConfig
from pipelines.errors import KerasflowError
from pipelines.registry import Registry

POOL = "kerasflow"
FLOW_NAME = "kerasflow-retrain"
SCORING_FLOW_NAME = "kerasflow-predict"


def deployment_name(model: str, scoring: bool = False) -> str:
    return f"{'predict' if scoring else 'retrain'}-{model}"


def absolute(config: RetrainConfig) -> RetrainConfig:
    """The same retrain with every path absolute: a scheduled run starts in another working directory."""
    paths = {key: value.resolve() for key in ("data", "test_data", "registry", "runs_root")
             if (value := getattr(config, key)) is not None}
    return config.model_copy(update=paths)


def build(config: RetrainConfig, cron: str | None = None, interval_seconds: float | None = None,
          timezone: str = "UTC") -> RunnerDeployment:
    """The deployment that retrains `config.name` on its schedule (exactly one of cron and interval)."""
    schedule = _schedule(config, cron, interval_seconds, timezone)
    config = absolute(config)
    return retrain_flow.to_deployment(
        name=deployment_name(config.name),
        description=f"Retrain {config.name} on {config.data or config.dataset} "
                    f"({'cron ' + cron if cron else f'every {interval_seconds:g} s'}); promote only if it wins.",
        schedules=[schedule],
        parameters={"config": json.loads(config.model_dump_json())},
        tags=["kerasflow", "retrain", f"model:{config.name}"],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def build_scoring(config: RetrainConfig, out_dir: Path, cron: str | None = None,
                  interval_seconds: float | None = None, timezone: str = "UTC") -> RunnerDeployment:
    """The deployment that scores `config.data` with the champion of `config.name` on its schedule."""
    from flows.predict import predict_flow

    schedule = _schedule(config, cron, interval_seconds, timezone)
    config = absolute(config)
    return predict_flow.to_deployment(
        name=deployment_name(config.name, scoring=True),
        description=f"Score {config.data} with the champion of {config.name} into {Path(out_dir).resolve()}.",
        schedules=[schedule],
        parameters={"source": config.name, "data": str(config.data), "out_dir": str(Path(out_dir).resolve()),
                    "registry": str(config.registry)},
        tags=["kerasflow", "predict", f"model:{config.name}"],
        concurrency_limit=1,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


def _schedule(config: RetrainConfig, cron: str | None, interval_seconds: float | None, timezone: str):
    if (cron is None) == (interval_seconds is None):
        raise KerasflowError("give exactly one of --cron (e.g. '0 2 * * *') or --interval (seconds)")
    Registry(config.registry).required_champion(config.name, verify=False)
    return Cron(cron, timezone=timezone) if cron else Interval(timedelta(seconds=interval_seconds))


def apply_to_pool(deployment: RunnerDeployment, pool: str = POOL) -> str:
    """Register `deployment` with a process work pool, creating the pool if it is missing; returns its id."""
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    return str(deployment.apply(work_pool_name=pool))


def serve_forever(deployment: RunnerDeployment) -> None:
    """Run the schedule from this process until interrupted (no work pool, no worker)."""
    serve(deployment)


@dataclass
class Scheduled:
    """One scheduled retrain as the API has it."""

    deployment: str
    model: str
    schedule: str
    pool: str
    next_runs: list[str]
    paused: bool


def scheduled() -> list[Scheduled]:
    """Every deployment of the retrain flow, with its schedule and its next scheduled runs."""
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    found = []
    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[FLOW_NAME, SCORING_FLOW_NAME])))}
        deployments = client.read_deployments(flow_filter=FlowFilter(
            name=FlowFilterName(any_=[FLOW_NAME, SCORING_FLOW_NAME])))
        for d in sorted(deployments, key=lambda d: (flows.get(d.flow_id, ""), d.name)):
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[d.id])),
                flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[d.id]),
                                              state=FlowRunFilterState(type=FlowRunFilterStateType(
                                                  any_=[StateType.SCHEDULED]))),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=3)
            model = next((t.partition(":")[2] for t in d.tags if t.startswith("model:")), "")
            found.append(Scheduled(f"{flows.get(d.flow_id, FLOW_NAME)}/{d.name}", model, ", ".join(_describe(s.schedule) for s in d.schedules),
                                   d.work_pool_name or "(served)",
                                   [r.expected_start_time.strftime("%Y-%m-%d %H:%M:%S UTC") for r in runs
                                    if r.expected_start_time], bool(d.paused)))
    return found


def unschedule(model: str, scoring: bool = False) -> bool:
    """Delete the scheduled retrain (or scoring) of `model`; False if it had none."""
    flow_name = SCORING_FLOW_NAME if scoring else FLOW_NAME
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"{flow_name}/{deployment_name(model, scoring)}")
        except ObjectNotFound:
            return False
        client.delete_deployment(deployment.id)
    return True


def _describe(schedule) -> str:
    if getattr(schedule, "cron", None):
        return f"cron {schedule.cron} ({schedule.timezone or 'UTC'})"
    if getattr(schedule, "interval", None):
        return f"every {schedule.interval.total_seconds():g} s"
    return str(schedule)
