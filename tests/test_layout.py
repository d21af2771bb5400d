"""The library stays readable in small pieces: no function over 80 lines, no module over 400."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 400


def function_lengths(source: str) -> dict[str, int]:
    """Every function and method in ``source`` (nested ones included), by qualified name, with its
    length in lines from the ``def`` to its last line."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def library_modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_no_function_in_the_library_is_longer_than_80_lines():
    too_long = [
        f"{path.relative_to(SRC)}:{name} ({length} lines)"
        for path in library_modules()
        for name, length in function_lengths(path.read_text()).items()
        if length > MAX_FUNCTION_LINES
    ]
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines: {too_long}"


def test_no_module_in_the_library_is_longer_than_400_lines():
    too_long = [
        f"{path.relative_to(SRC)} ({length} lines)"
        for path in library_modules()
        if (length := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def test_function_lengths_count_methods_and_nested_functions_from_def_to_last_line():
    source = (
        "def outer():\n"
        "    def inner():\n"
        "        return 1\n"
        "    return inner\n"
        "\n"
        "class Box:\n"
        "    async def open(self):\n"
        "        x = 1\n"
        "\n"
        "        return x\n"
    )
    assert function_lengths(source) == {"outer": 4, "outer.inner": 2, "Box.open": 4}


STAGES = SRC.parent / "stages"
MAX_STAGE_LINES = 80
MAX_LOOP_FUNCTION_LINES = 60


def test_every_stage_script_is_a_thin_main_of_at_most_80_lines():
    too_long = [
        f"{path.name} ({length} lines)"
        for path in sorted(STAGES.glob("*.py"))
        if (length := len(path.read_text().splitlines())) > MAX_STAGE_LINES
    ]
    assert not too_long, (
        f"stage scripts over {MAX_STAGE_LINES} lines (logic belongs in src/): {too_long}"
    )


def test_no_function_of_the_training_loop_is_longer_than_60_lines():
    loop = SRC / "seqlm" / "neural" / "loop.py"
    lengths = function_lengths(loop.read_text())
    assert "train_loop" in lengths
    too_long = {name: n for name, n in lengths.items() if n > MAX_LOOP_FUNCTION_LINES}
    assert not too_long, (
        f"functions of neural/loop.py over {MAX_LOOP_FUNCTION_LINES} lines: {too_long}"
    )
