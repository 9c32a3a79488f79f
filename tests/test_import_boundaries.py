"""The one-way arrows between the parts (docs/architecture.md), checked on the source: a forbidden import fails here
before it becomes a cycle or a deployed dependency."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# part -> top-level packages its modules may not import
FORBIDDEN = {
    "luab": {"django", "rest_framework", "torch", "torchvision", "timm", "annotator", "training", "devtools", "config"},
    "training/ml": {"django", "rest_framework", "annotator", "devtools", "config"},
    "annotator": {"training", "devtools", "benchmarks", "tests"},
    "training": {"devtools", "benchmarks", "tests"},
    "config": {"devtools", "benchmarks", "tests"},
}


def imported_packages(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


@pytest.mark.parametrize("part", sorted(FORBIDDEN))
def test_part_imports_only_what_it_may(part):
    offences = [
        f"{path.relative_to(ROOT)}:{line} imports {package}"
        for path in sorted((ROOT / part).rglob("*.py"))
        if "migrations" not in path.parts
        for line, package in imported_packages(path)
        if package in FORBIDDEN[part]
    ]
    assert offences == []
