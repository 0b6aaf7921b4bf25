"""Prefect flows and the `kerasflow` CLI: thin orchestration over `pipelines/`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from flows.server import default_startup_timeout  # noqa: E402  (before Prefect reads its settings)

default_startup_timeout()
