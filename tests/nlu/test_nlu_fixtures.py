"""Every Rasa fixture in shared/ reads to the counts written in its EXPECTED.md."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from nlu import TrainingData, load_training_data


def _expected_rows(expected_md: Path) -> dict[str, dict[str, Any]]:
    """Parse the 'NLU files' table and the per-file details of EXPECTED.md."""
    text = expected_md.read_text(encoding="utf-8")
    table = text.split("## NLU files", 1)[1].split("###", 1)[0]
    rows: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 9 or not cells[0].endswith((".yml", ".md", ".json")):
            continue
        name, _fmt, intents, examples, entities, annotations, synonyms, regexes, lookups = cells
        m = re.match(r"(\d+)(?: \((\d+) with keys\))?", intents)
        assert m
        ex = re.match(r"(\d+) \((\d+)\)", examples)
        assert ex
        rows[name] = {
            "intents": int(m.group(1)),
            "full_intents": int(m.group(2) or m.group(1)),
            "examples": int(ex.group(1)),
            "unique": int(ex.group(2)),
            "entities": [] if entities == "-" else [e.strip() for e in entities.split(",")],
            "annotations": int(annotations),
            "synonyms": tuple(int(x) for x in synonyms.split("/")),
            "regexes": _names_and_count(regexes),
            "lookups": _names_and_count(lookups),
        }
    details = text.split("### Per file details", 1)[1]
    for block in details.split("**")[1:]:
        if block.strip() in rows:
            current = block.strip()
            continue
        per_intent = re.search(r"examples per intent: (.*)", block)
        if per_intent and current:
            rows[current]["per_intent"] = {
                k: int(v) for k, v in (p.rsplit(" ", 1) for p in per_intent.group(1).split(", "))
            }
    return rows


def _names_and_count(cell: str) -> tuple[list[str], int]:
    if cell == "-":
        return [], 0
    m = re.match(r"(.*) \[(\d+)\]", cell)
    assert m, cell
    return [n.strip() for n in m.group(1).split(",")], int(m.group(2))


def _all_fixture_files(root: Path) -> list[Path]:
    return [p for p in sorted(root.rglob("*")) if p.suffix in (".yml", ".md", ".json") and p.parent != root]


@pytest.fixture(scope="module")
def rasa_fixtures(shared_dir: Path) -> Path:
    root = shared_dir / "fixtures" / "rasa"
    if not (root / "EXPECTED.md").exists():
        pytest.fail(f"{root}/EXPECTED.md is missing")
    return root


def test_expected_table_lists_twelve_nlu_files(rasa_fixtures: Path) -> None:
    rows = _expected_rows(rasa_fixtures / "EXPECTED.md")
    assert len(rows) == 12
    assert all("per_intent" in row for row in rows.values())


def test_every_fixture_file_loads_and_non_nlu_files_are_skipped(rasa_fixtures: Path) -> None:
    expected = _expected_rows(rasa_fixtures / "EXPECTED.md")
    for path in _all_fixture_files(rasa_fixtures):
        data = load_training_data(path)
        name = str(path.relative_to(rasa_fixtures))
        if name in expected:
            assert data.examples_as_written, name
        else:  # domain, stories, rules
            assert data.examples_as_written == [], name


def _check(data: TrainingData, exp: dict[str, Any], name: str) -> None:
    assert len(data.intents) == exp["intents"], name
    assert len(data.full_intents) == exp["full_intents"], name
    assert len(data.examples_as_written) == exp["examples"], name
    assert len(data.examples) == exp["unique"], name
    assert data.entity_names == sorted(exp["entities"]), name
    assert sum(len(e.entities) for e in data.examples_as_written) == exp["annotations"], name
    entries, variants, inline, map_size = exp["synonyms"]
    assert len(data.synonyms) == entries, name
    assert sum(len(s.variants) for s in data.synonyms) == variants, name
    assert sum(1 for e in data.examples_as_written for a in e.entities if a.value != a.text) == inline, name
    assert len(data.synonym_map()) == map_size, name
    regex_names, regex_count = exp["regexes"]
    assert [r.name for r in data.regexes] == regex_names, name
    assert sum(len(r.patterns) for r in data.regexes) == regex_count, name
    lookup_names, lookup_count = exp["lookups"]
    assert [lt.name for lt in data.lookups] == lookup_names, name
    assert sum(len(lt.elements) for lt in data.lookups) == lookup_count, name
    if "per_intent" in exp:
        counts: dict[str, int] = {}
        for e in data.examples_as_written:
            counts[e.full_intent] = counts.get(e.full_intent, 0) + 1
        assert counts == exp["per_intent"], name


def test_each_nlu_fixture_matches_expected_counts(rasa_fixtures: Path) -> None:
    expected = _expected_rows(rasa_fixtures / "EXPECTED.md")
    for name, exp in expected.items():
        _check(load_training_data(rasa_fixtures / name), exp, name)


def test_roles_and_groups_are_kept(rasa_fixtures: Path) -> None:
    data = load_training_data(rasa_fixtures / "rasa/data/test/demo-rasa-composite-entities.yml")
    roles = {f"{a.entity}.{a.role}" for e in data.examples for a in e.entities if a.role}
    groups = {f"{a.entity}.{a.group}" for e in data.examples for a in e.entities if a.group}
    assert roles == {"location.from", "location.to"}
    assert groups == {"size.1", "size.2", "topping.1", "topping.2"}


def test_a_whole_project_folder_merges_all_nlu_files(rasa_fixtures: Path) -> None:
    data = load_training_data([rasa_fixtures / "financial-demo", rasa_fixtures / "helpdesk-assistant"])
    assert len(data.examples_as_written) == 578 + 452
    assert len(data.sources) == 2


def test_non_ascii_lookup_element_is_read_intact(rasa_fixtures: Path) -> None:
    data = load_training_data(rasa_fixtures / "rasa/examples/knowledgebasebot/data/nlu.yml")
    assert "Lụa Restaurant" in data.lookups[0].elements


def test_retrieval_intent_splits_into_intent_and_response_key(rasa_fixtures: Path) -> None:
    data = load_training_data(rasa_fixtures / "rasa/data/examples/rasa/demo-rasa.yml")
    chitchat = [e for e in data.examples if e.intent == "chitchat"]
    assert {e.response_key for e in chitchat} == {"ask_name", "ask_weather"}
    assert "utter_chitchat/ask_name" in data.responses
