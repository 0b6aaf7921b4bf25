"""Every module that registers a Keras layer is imported before kerasflow loads a saved model."""

import ast
from pathlib import Path

from models.saving import LAYER_MODULES

ROOT = Path(__file__).resolve().parents[2]


def test_every_module_registering_a_keras_layer_is_imported_before_a_model_is_loaded():
    registering = set()
    for path in sorted(ROOT.glob("[a-z]*/**/*.py")):
        if ".venv" in path.parts or "tests" in path.parts:
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(node, ast.Attribute) and node.attr == "register_keras_serializable" for node in ast.walk(tree)):
            registering.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    assert registering, "the models' layers register themselves"
    assert registering == set(LAYER_MODULES)
