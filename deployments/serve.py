"""`make serve`: the nightly retraining deployments of prefect.yaml, served by this process.

prefect.yaml is the one place the deployments are defined: this script
turns each of its entries into a `RunnerDeployment` of `retrain_flow` (same
name, schedules, parameters, tags and concurrency limit) and serves them, so
no work pool or worker is needed on a single machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from prefect import serve
from prefect.schedules import Cron

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flows.retrain import retrain_flow  # noqa: E402

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
ENTRYPOINT = "flows/retrain.py:retrain_flow"


def load_deployments(path: Path = PREFECT_YAML, parameters: dict | None = None):
    """One served deployment per retrain entry of `path`; `parameters` replaces theirs (tests, one-offs)."""
    spec = yaml.safe_load(Path(path).read_text())
    entries = [d for d in spec.get("deployments") or [] if d.get("entrypoint") == ENTRYPOINT]
    if not entries:
        raise SystemExit(f"{path}: no deployment with entrypoint {ENTRYPOINT}")
    return [retrain_flow.to_deployment(
        name=entry["name"],
        description=entry.get("description"),
        schedules=[Cron(s["cron"], timezone=s.get("timezone", "UTC")) for s in entry.get("schedules") or []],
        parameters=parameters if parameters is not None else entry.get("parameters", {}),
        tags=entry.get("tags"),
        concurrency_limit=entry.get("concurrency_limit"),
    ) for entry in entries]


if __name__ == "__main__":
    serve(*load_deployments())
