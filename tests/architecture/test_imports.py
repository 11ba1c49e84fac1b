"""The dependency rules of docs/architecture.md, read from the source: who may import whom, no cycles, platforms stay in channels/."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.registry import CHANNELS

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contracts", "crm_store", "nlu", "channels", "bot", "console", "campaigns", "insights", "dangol")
#: package -> the packages of ours it may never import.
FORBIDDEN = {
    "contracts": set(PACKAGES) - {"contracts"},
    "crm_store": set(PACKAGES) - {"crm_store"},
    "nlu": set(PACKAGES) - {"nlu"},
    "channels": {"bot", "nlu", "console", "campaigns", "insights", "dangol"},
    "campaigns": {"bot", "channels", "nlu", "console", "insights", "dangol"},
    "insights": {"bot", "channels", "console", "campaigns", "dangol"},
    "bot": {"console", "dangol"},
    "console": {"dangol"},
}
PLATFORMS = frozenset(CHANNELS)


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def imported(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Our modules ``module`` imports, anywhere in the file; ``from package import name`` counts as the submodule when there is one."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            for alias in node.names:
                name = f"{base}.{alias.name}"
                yield (name if name in MODULES else base), node.lineno


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets = set()
        for name, _ in imported(module, path):
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        edges[module] = targets
    return edges


def test_each_package_imports_only_what_its_layer_allows() -> None:
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for module, path in MODULES.items() for name, line in imported(module, path)
             if name.split(".")[0] in FORBIDDEN.get(module.split(".")[0], ())]
    assert wrong == []


def test_no_file_level_import_cycle() -> None:
    edges = graph()
    cycles = []
    for start in edges:  # a path back to the start through the import graph
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert cycles == []


def platform_mentions(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
            if value in PLATFORMS or any(value.startswith(f"{name}.") for name in PLATFORMS):
                yield f"{path.name}:{node.lineno} {value!r}"


def test_no_platform_is_named_outside_channels() -> None:
    found = [hit for module, path in MODULES.items() if not module.startswith("channels") for hit in platform_mentions(path)]
    found += [f"{path.relative_to(ROOT)}:{line} imports {name}" for module, path in MODULES.items()
              if not module.startswith("channels") for name, line in imported(module, path)
              if any(name.startswith(f"channels.{platform}") for platform in PLATFORMS)]
    assert found == []


@pytest.mark.parametrize("source", [
    "from bot.engine.turn import Decision\n",
    "import console.pages\n",
])
def test_the_layer_check_catches_a_store_module_importing_upwards(tmp_path: Path, source: str) -> None:
    path = tmp_path / "bad.py"
    path.write_text(source, encoding="utf-8")
    names = [name for name, _ in imported("crm_store.bad", path)]
    assert any(name.split(".")[0] in FORBIDDEN["crm_store"] for name in names)


def test_the_platform_check_catches_a_platform_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(f'if message.channel == "{sorted(PLATFORMS)[0]}":\n    pass\n', encoding="utf-8")
    assert list(platform_mentions(path))
