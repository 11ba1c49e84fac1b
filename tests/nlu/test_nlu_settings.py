"""A bot folder's config.yml: which pipeline, language and out-of-scope settings training uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu import NluSettings, SettingsError, read_settings
from nlu.thresholds import DEFAULT_EXPECTED_OOS_RATE


def test_a_folder_without_config_gets_the_fast_english_defaults(tmp_path: Path) -> None:
    assert read_settings(tmp_path) == NluSettings("en", "fast", DEFAULT_EXPECTED_OOS_RATE, None)


def test_a_rasa_style_config_is_read_with_its_rasa_only_keys_ignored(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(
        "recipe: default.v1\nassistant_id: shop\nlanguage: en\npipeline: accurate\n"
        "expected_oos_rate: 0.3\ntarget_oos_recall: 0.9\npolicies: []\n", encoding="utf-8")
    settings = read_settings(tmp_path)
    assert (settings.pipeline, settings.expected_oos_rate, settings.target_oos_recall) == ("accurate", 0.3, 0.9)
    assert settings.embeds


@pytest.mark.parametrize("language", ["ko", "ko-KR", "ja", "de"])
def test_only_english_bots_embed(language: str) -> None:
    assert not NluSettings(language=language, pipeline="accurate").embeds
    assert NluSettings(language="en-US", pipeline="accurate").embeds


def test_a_config_that_is_not_a_mapping_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("- fast\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=f"{path}: expected a mapping"):
        read_settings(path)
