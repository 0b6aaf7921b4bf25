"""Parallel search in the flow: the workers become Prefect task runs through prefect-dask."""

import asyncio
import json

import pytest

from tests.conftest import fast_config, run_and_artifact_keys


@pytest.mark.e2e
@pytest.mark.timeout(400)
@pytest.mark.usefixtures("prefect_server")
def test_flow_places_two_search_workers_as_prefect_tasks_on_dask(table_csv, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.train import train_flow

    config = fast_config(data=table_csv, target="label", runs_root=tmp_path / "runs", name="parallel", workers=2,
                         max_trials=4, budget_minutes=3, quantize=["float32"])
    summary = train_flow(config)

    run, _ = asyncio.run(run_and_artifact_keys("train-parallel"))

    async def task_names():
        async with get_client() as client:
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            return {t.name: t.state.type.value for t in tasks}

    tasks = asyncio.run(task_names())
    assert tasks.get("search-worker1") == "COMPLETED" and tasks.get("search-worker2") == "COMPLETED", tasks
    report = (tmp_path / "runs" / "parallel").glob("*/report.md")
    text = next(report).read_text()
    assert "2 parallel workers" in text and "worker1" in text and "worker2" in text
    trials = json.loads(next((tmp_path / "runs" / "parallel").glob("*/search/oracle.json")).read_text())
    assert summary["test"]["accuracy"] > 0 and trials["ongoing_trials"] == {}
