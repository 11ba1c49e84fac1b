"""Bad training data raises TrainingDataError naming file, line and problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu import TrainingDataError, load_training_data


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "content, line, problem",
    [
        ('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi\n  - bad: [\n', None, "bad YAML"),
        ('version: "2.0"\nnlu:\n- intent: a\n  examples: |\n    - hi\n', 1, "unsupported training data version '2.0'"),
        ('version: "3.1"\nnlu:\n- intent: greet\n- intent: b\n  examples: |\n    - hi\n', 3, "intent 'greet' has no examples"),
        ('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi\n    - go to [paris](city\n', 6, "unclosed entity annotation"),
        ('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi\n    - [x]{"value": 1}\n', 6, 'needs an "entity" name'),
        ('version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi\n    no dash here\n', 6, "starting with '- '"),
        ('version: "3.1"\nnlu:\n- regex: zip\n  examples: |\n    - [0-9{5}\n', 5, "invalid regex"),
        ('version: "3.1"\nnlu:\n- foo: a\n', 3, "exactly one of intent/synonym/regex/lookup"),
    ],
)
def test_yaml_errors_point_at_the_line(tmp_path: Path, content: str, line: int | None, problem: str) -> None:
    path = _write(tmp_path, "nlu.yml", content)
    with pytest.raises(TrainingDataError) as info:
        load_training_data(path)
    assert problem in str(info.value)
    assert str(info.value).startswith(str(path) + ":")
    if line is not None:
        assert info.value.line == line


def test_csv_without_label_column_names_the_accepted_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "text,topic\nhi,greet\n")
    with pytest.raises(TrainingDataError, match=r"d.csv:1: .*no intent column \(expected one of: intent, category, label\)"):
        load_training_data(path)


@pytest.mark.parametrize("column", ["intent", "category", "label"])
def test_csv_accepts_intent_category_or_label(tmp_path: Path, column: str) -> None:
    path = _write(tmp_path, "d.csv", f'text,{column}\nhi,greet\n"where, is it",track\n')
    data = load_training_data(path)
    assert [(e.text, e.intent) for e in data.examples] == [("hi", "greet"), ("where, is it", "track")]


def test_markdown_with_broken_annotation_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "nlu.md", "## intent:a\n- hi\n- to [paris](city\n")
    with pytest.raises(TrainingDataError, match=r"nlu.md:3: unclosed"):
        load_training_data(path)


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "nlu.json", '{"rasa_nlu_data": {\n "common_examples": [,]}}')
    with pytest.raises(TrainingDataError, match=r"nlu.json:2: bad JSON"):
        load_training_data(path)


def test_missing_file_is_a_training_data_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingDataError, match="no such file"):
        load_training_data(tmp_path / "nope.yml")


def test_examples_may_be_a_list_of_text_mappings(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "nlu.yml",
        'version: "3.1"\nnlu:\n- intent: a\n  metadata: {sentiment: neutral}\n  examples:\n  - text: |\n      hi [Bob](name)\n    metadata: {x: 1}\n  - text: hello\n',
    )
    data = load_training_data(path)
    assert [e.text for e in data.examples] == ["hi Bob", "hello"]
    assert data.examples[0].entities[0].entity == "name"
    assert data.examples[1].metadata == {"sentiment": "neutral"}


def test_duplicates_are_dropped_on_intent_text_and_entities(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "nlu.yml",
        'version: "3.1"\nnlu:\n- intent: a\n  examples: |\n    - hi [x](e)\n    - hi [x](e)\n    - hi x\n    -  hi x\n- intent: b\n  examples: |\n    - hi x',
    )
    data = load_training_data(path)
    assert len(data.examples_as_written) == 5
    assert [(e.intent, e.text, len(e.entities)) for e in data.examples] == [("a", "hi x", 1), ("a", "hi x", 0), ("b", "hi x", 0)]


def test_domain_file_given_alone_gives_no_examples_and_no_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "domain.yml", 'version: "3.1"\nintents:\n- greet\nresponses:\n  utter_greet:\n  - text: hi\n')
    assert load_training_data(path).examples == []
