"""The house's arrows run one way: no module of ``r1omni`` imports, directly or through others, a module
that imports it back (lazy imports inside functions count too: they only postpone the circle); every
room stands on a floor of ``style.md``'s house and imports only its own floor and those below; the
contract imports without torch."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the r1omni modules it imports (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    modules = {_module_name(p): p for p in (SRC / "r1omni").rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 50 and graph["r1omni.train.grpo"]  # the walk found the package and its imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_walk_finds_a_circle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_contract_imports_nothing_above_it():
    graph = import_graph()
    contract = {"r1omni.labels", "r1omni.schema", "r1omni.template", "r1omni.rewards", "r1omni.metrics",
                "r1omni.claims"}
    allowed = contract | {"r1omni.atomic"}  # a standard-library helper
    for module in contract:
        assert graph[module] <= allowed, (module, graph[module] - allowed)


# style.md's house, bottom to top: a room imports its own floor and the floors below, never one above.
FLOORS = (
    ("helpers", {"atomic", "environment", "yamlconfig", "plots", "provenance"}),  # standard-library aids
    ("contract", {"labels", "schema", "template", "rewards", "metrics", "claims"}),
    ("inputs", {"media", "data", "synth", "cues"}),
    ("models", {"models", "hf_auto"}),  # hf_auto: HumanOmni joins transformers' Auto classes
    ("clips", {"clips"}),            # files decoded for a policy: above models, which never load clips
    ("answers", {"inference"}),      # below the recipes: predicting never trains
    ("recipes and results", {"train", "evaluate", "sampled", "explain", "timeline", "compare"}),
    ("apps", {"demo", "serve"}),
    ("cli", {"cli", "__main__", "r1omni"}),  # the package: its facade (r1omni.load) stands on everything
)
# Arrows the floors allow that style.md ("serve never imports train") or the house review forbid: training
# and reading results stay apart, though they share a floor.
NEVER = {("serve", "train"), ("train", "evaluate"), ("train", "explain"), ("train", "timeline"),
         ("timeline", "train"), ("explain", "train"), ("evaluate", "train"), ("sampled", "train")}


def _room(module: str) -> str:
    """``r1omni.models.decoding`` -> ``models``; the package itself is the room ``r1omni``."""
    return module.split(".")[1] if "." in module else module


def layer_violations(graph: dict[str, set[str]], floors=FLOORS, never=NEVER) -> list[str]:
    """Each module whose room is on no floor, each import that points to a floor above, each forbidden arrow."""
    floor_of = {room: index for index, (_, rooms) in enumerate(floors) for room in rooms}
    problems = []
    for module in sorted(graph):
        room = _room(module)
        if room not in floor_of:
            problems.append(f"{module}: room {room!r} is on no floor; place it in FLOORS (test_imports.py)")
            continue
        for target in sorted(graph[module]):
            there = _room(target)
            if floor_of.get(there, -1) > floor_of[room]:
                problems.append(f"{module} (floor {floors[floor_of[room]][0]!r}) imports {target}, a floor above "
                                f"({floors[floor_of[there]][0]!r})")
            elif (room, there) in never:
                problems.append(f"{module} imports {target}: {room} never imports {there}")
    return problems


def test_every_room_has_a_floor_and_no_import_points_up():
    problems = layer_violations(import_graph())
    assert not problems, "\n".join(problems)


def test_the_layer_check_finds_an_upward_import():
    graph = {"r1omni.labels": set(), "r1omni.train.setup": {"r1omni.labels"}, "r1omni.train.grpo": set(),
             "r1omni.models.policy": {"r1omni.labels", "r1omni.train.grpo"},   # models reaching up into a recipe
             "r1omni.serve.app": {"r1omni.models.policy", "r1omni.train.setup"},  # down, but serve never imports train
             "r1omni.newroom": {"r1omni.labels"}}                               # a room nobody placed
    assert layer_violations(graph) == [
        "r1omni.models.policy (floor 'models') imports r1omni.train.grpo, a floor above ('recipes and results')",
        "r1omni.newroom: room 'newroom' is on no floor; place it in FLOORS (test_imports.py)",
        "r1omni.serve.app imports r1omni.train.setup: serve never imports train"]
    assert layer_violations({"r1omni.rewards": {"r1omni.media.video"}}) == [
        "r1omni.rewards (floor 'contract') imports r1omni.media.video, a floor above ('inputs')"]


def test_the_contract_imports_without_torch():
    contract = sorted(f"r1omni.{room}" for room in dict(FLOORS)["contract"])
    code = (f"import sys; import {', '.join(contract)}; "
            "print(sorted(name for name in ('torch', 'transformers') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)})
    assert done.stdout.strip() == "[]", done.stdout
