"""The package's imports follow the pipeline: no module imports one on a higher floor.

    0 errors, config, rundir, metrics, utils   (the ground: values, paths, scores)
    1 data        2 features        3 space (cells, recipes, the pipeline space as data)
    4 models      5 search          6 training
    7 reports     8 recognizer (model folder, backends, export, evaluate, serve)     9 cli, __main__

Every import is counted, also those inside functions. ARCHITECTURE.md states the same rule.
"""
import ast
from pathlib import Path

import emotionnas

FLOORS = [
    (0, ("errors", "config", "rundir", "metrics", "utils", "")),
    (1, ("data",)), (2, ("features",)), (3, ("space",)), (4, ("models",)), (5, ("search",)),
    (6, ("training",)), (7, ("reports",)), (8, ("recognizer",)),
    (9, ("cli", "__main__")),
]
ROOT = Path(emotionnas.__file__).parent


def floor_of(module: str) -> int:
    parts = module.split(".")
    assert parts[0] == "emotionnas", module
    top = parts[1] if len(parts) > 1 else ""
    for floor, names in FLOORS:
        if top in names:
            return floor
    raise AssertionError(f"module {module} is on no floor: add it to FLOORS and ARCHITECTURE.md")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("emotionnas")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("emotionnas"):
            out.add(node.module)
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def test_no_import_runs_back_up_the_pipeline():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        me = module_name(path)
        for other in imports(path):
            if floor_of(other) > floor_of(me):
                bad.append(f"{me} (floor {floor_of(me)}) imports {other} (floor {floor_of(other)})")
    assert bad == []


def test_every_file_is_under_400_lines():
    long = {module_name(p): n for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_the_rule_catches_a_back_import(tmp_path):
    # the checker itself: a data module importing training must be reported
    assert floor_of("emotionnas.training.loop") > floor_of("emotionnas.data.folds")
    p = tmp_path / "x.py"
    p.write_text("def f():\n    from emotionnas.training.loop import train_model\n")
    assert imports(p) == {"emotionnas.training.loop"}


MAX_FUNCTION_LINES = 60
# Functions allowed to be longer, by (module, qualified name).
LONG_FUNCTIONS_ALLOWED = {
    ("emotionnas.cli.parser", "build_parser"),  # the argument parser: one add_argument per line, nothing to split
}


def long_functions(path: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """{qualified name: lines} of every function or method in `path` longer than `limit`
    lines, decorators included (nested functions are counted on their own too)."""
    out = {}

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    if (n := child.end_lineno - start + 1) > limit:
                        out[name] = n
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(), str(path)), "")
    return out


def test_no_function_over_60_lines():
    long = {(module_name(p), name): n for p in sorted(ROOT.rglob("*.py"))
            for name, n in long_functions(p).items()}
    offenders = [f"{m}.{name} ({n} lines)" for (m, name), n in sorted(long.items())
                 if (m, name) not in LONG_FUNCTIONS_ALLOWED]
    assert offenders == []


def test_the_length_rule_catches_a_long_method(tmp_path):
    p = tmp_path / "x.py"
    p.write_text("class A:\n    @staticmethod\n    def f():\n" + "        x = 1\n" * 59 + "\n    def g():\n        pass\n")
    assert long_functions(p) == {"A.f": 61}
