"""The kerasflow pipeline steps as plain Python.

Each module is one step with typed inputs and outputs (dataclasses); none of
them imports Prefect, so every step can be run and tested alone. `flows/`
wraps them as Prefect tasks.
"""
