"""The mode registry: one object per mode, found through the Mode enum, and the shared code
that asks it instead of comparing a mode's name (read from the source, no TensorFlow)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from textgen.errors import TextgenError
from textgen.modes import Mode, mode_object, mode_of, wrong_mode

PACKAGE = Path(__file__).resolve().parents[1] / "textgen"


def test_each_mode_has_one_object_that_knows_its_recipe_and_config():
    from textgen.classify.config import ClassifierConfig
    from textgen.generate.config import GeneratorConfig

    generate, classify = mode_object(Mode.generate), mode_object("classify")
    assert generate.mode is Mode.generate and classify.mode is Mode.classify
    assert generate.config_class is GeneratorConfig
    assert classify.config_class is ClassifierConfig
    assert generate.recipe_class.mode is Mode.generate
    assert classify.recipe_class.mode is Mode.classify
    assert (generate.train_command, classify.train_command) == (
        "textgen train", "textgen classify train")
    assert mode_of({"mode": "classify"}) is classify
    with pytest.raises(TextgenError, match="unknown mode 'translate'; one of generate, classify"):
        mode_object("translate")


def test_the_summary_figure_reads_run_json_as_each_mode_reports_it():
    generate, classify = mode_object(Mode.generate), mode_object(Mode.classify)
    meta = {"training": {"best_logs": {"bits_per_char": 2.5, "val_bits_per_char": 2.25,
                                       "accuracy": 0.9}}}
    assert generate.figure.best(meta) == 2.25
    assert generate.figure.show(2.25) == "2.250 bits/char"
    assert generate.figure.label == "val bits/char"
    assert classify.figure.best(meta) == 0.9  # no validation split: the training accuracy
    assert classify.figure.show(None) == "-"
    assert classify.figure.show(0.8766) == "0.877 accuracy"


def test_wrong_mode_is_the_one_comparison():
    assert wrong_mode("generate", Mode.classify)
    assert not wrong_mode(Mode.generate, "generate")
    assert not wrong_mode("classify", None)  # None: any mode will do


def _python_files(folder: Path):
    for path in sorted(folder.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def _names_a_mode(node: ast.AST) -> bool:
    """`"generate"`, `Mode.generate`, `meta["mode"]`, `x.mode`, `MODES`: a mode's name."""
    if isinstance(node, ast.Constant):
        return node.value in {m.value for m in Mode}
    if isinstance(node, ast.Attribute):
        return node.attr == "mode" or (isinstance(node.value, ast.Name)
                                       and node.value.id == "Mode")
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value == "mode"
    if isinstance(node, ast.Name):
        return node.id in ("MODES", "mode")
    if isinstance(node, ast.Call):
        return isinstance(node.func, ast.Name) and node.func.id == "Mode"
    return False


def test_no_code_but_the_registry_compares_mode_names():
    found = []
    for path, tree in _python_files(PACKAGE):
        for node in ast.walk(tree):
            operands = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
            if any(isinstance(o, ast.Constant) and o.value is None for o in operands):
                continue  # `mode is None`: whether a mode was asked for, not which
            if any(_names_a_mode(operand) for operand in operands):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert [place.partition(":")[0] for place in found] == ["modes.py"], found  # wrong_mode


def _imports(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_a_mode_never_imports_the_other_and_the_registry_imports_no_mode():
    for mode, other in ((Mode.generate, Mode.classify), (Mode.classify, Mode.generate)):
        for path, tree in _python_files(PACKAGE / mode.value):
            wrong = {n for n in _imports(tree) if n.startswith(f"textgen.{other.value}")}
            assert not wrong, f"{path.name} imports {wrong}"
    registry = ast.parse((PACKAGE / "modes.py").read_text(encoding="utf-8"))
    top_level = {n for stmt in registry.body if isinstance(stmt, ast.Import | ast.ImportFrom)
                 for n in _imports(stmt)}
    assert {n for n in top_level if n.startswith("textgen")} == {"textgen.errors"}
