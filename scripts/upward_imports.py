"""List the imports of a stage (``avssl_core.stages.*``) made by code that is not a front end.

Stages are leaves of the front ends (docs: DESIGN.md, "Seams"): the CLI (``avssl_core/cli.py``), ``flows/``,
``tests/`` and the programs in ``benchmarks/`` and ``scripts/`` may import a stage; a stage may import
another stage; no other module may. Every import of a stage is found by reading the source (``import``,
``from ... import``, also inside functions, and ``importlib.import_module("...")`` with a literal name).

Usage: python scripts/upward_imports.py [ROOT]   (ROOT: the checkout, default: this script's)
Prints one line per import, ``below`` (a library module importing a stage: the ones that must go) and
``stage`` (a stage importing a stage: allowed, listed to be seen), then a count; exits 1 if any is below.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "avssl_core"
STAGES = f"{PACKAGE}.stages"
# Programs, not library: they sit on top of everything and may call a stage.
FRONT_ENDS = (f"{PACKAGE}/cli.py", "flows/", "tests/", "benchmarks/", "scripts/")


def module_name(rel: str) -> str:
    parts = rel.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(tree: ast.AST, module: str) -> Iterator[tuple[int, str]]:
    """(line, dotted name) for every module or name an import statement of ``tree`` brings in."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing module's package
                package = module.split(".")[: -node.level] if module else []
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            yield node.lineno, node.args[0].value


def stage_imports(root: Path) -> list[tuple[str, str, int, str]]:
    """(kind, file, line, imported) for each import of a stage outside the front ends; kind: below | stage."""
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(FRONT_ENDS):
            continue
        module = module_name(rel)
        try:
            tree = ast.parse(path.read_text(), filename=rel)
        except SyntaxError as exc:
            raise SystemExit(f"{rel}: cannot parse: {exc}") from exc
        kind = "stage" if module.startswith(STAGES + ".") else "below"
        for line, name in imported_modules(tree, module):
            # `from avssl_core import stages` names the package itself; anything under it is a stage.
            if name == STAGES or name.startswith(STAGES + "."):
                found.append((kind, rel, line, name))
    return found


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[1]
    found = stage_imports(root)
    for kind, rel, line, name in sorted(found):
        print(f"{kind:<5} {rel}:{line} -> {name}")
    below = sum(1 for kind, *_ in found if kind == "below")
    print(f"{below} import(s) of a stage from below the front ends, "
          f"{len(found) - below} from one stage to another")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
