"""NLU settings from a bot folder's `config.yml`, in Rasa's shape: `language` and `pipeline`.

    language: en              # the bot's language; `accurate` covers English only
    pipeline: accurate        # fast (the default) | accurate
    expected_oos_rate: 0.2    # share of out-of-scope messages expected (nlu.thresholds, nlu.oos_detector)
    target_oos_recall: 0.9    # optional: reach this out-of-scope recall instead

`fast` is sparse word and character n-grams with linear models; `accurate`
adds an all-MiniLM-L6-v2 sentence embedding (the `dangol[embed]` extra).
Rasa's own keys (`recipe`, `assistant_id`, `policies`) are accepted and
ignored, because a Rasa project's config.yml holds them; a Rasa component
list under `pipeline` is refused with a message, because Dangol does not run
Rasa components and silently training something else would mislead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nlu.thresholds import DEFAULT_EXPECTED_OOS_RATE

PIPELINES = ("fast", "accurate")
CONFIG_FILE = "config.yml"
#: Languages the `accurate` tier's embedding model was trained on.
EMBEDDING_LANGUAGES = ("en",)
_KNOWN = {"language", "pipeline", "expected_oos_rate", "target_oos_recall", "recipe", "assistant_id", "policies"}


class SettingsError(ValueError):
    """A config.yml that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class NluSettings:
    language: str = "en"
    pipeline: str = "fast"
    expected_oos_rate: float = DEFAULT_EXPECTED_OOS_RATE
    target_oos_recall: float | None = None

    def __post_init__(self) -> None:
        if self.pipeline not in PIPELINES:
            raise SettingsError(f"pipeline must be one of {', '.join(PIPELINES)}, not {self.pipeline!r}")
        if not 0.0 < self.expected_oos_rate < 1.0:
            raise SettingsError(f"expected_oos_rate must be between 0 and 1 (exclusive), not {self.expected_oos_rate}")
        if self.target_oos_recall is not None and not 0.0 < self.target_oos_recall <= 1.0:
            raise SettingsError(f"target_oos_recall must be in (0, 1], not {self.target_oos_recall}")

    @property
    def embeds(self) -> bool:
        """Whether training uses the sentence embedding (accurate pipeline in a language it covers)."""
        return self.pipeline == "accurate" and self.base_language in EMBEDDING_LANGUAGES

    @property
    def base_language(self) -> str:
        return self.language.lower().replace("_", "-").split("-")[0]

    def to_dict(self) -> dict[str, Any]:
        return {"language": self.language, "pipeline": self.pipeline, "expected_oos_rate": self.expected_oos_rate,
                "target_oos_recall": self.target_oos_recall}


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{path}: {key} must be a number, not {value!r}")
    return float(value)


def read_settings(path: str | os.PathLike[str]) -> NluSettings:
    """Settings from a config.yml, or from `config.yml` inside a bot folder; defaults where it is absent."""
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
        if not path.is_file():
            return NluSettings()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return NluSettings()
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a mapping of settings (language:, pipeline:)")
    unknown = sorted(set(map(str, raw)) - _KNOWN)
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(unknown)} (known: language, pipeline, "
                            "expected_oos_rate, target_oos_recall)")
    pipeline = raw.get("pipeline", "fast")
    if isinstance(pipeline, list):
        raise SettingsError(f"{path}: pipeline lists Rasa components, which Dangol does not run; "
                            f"write 'pipeline: fast' or 'pipeline: accurate'")
    language = raw.get("language", "en")
    if not isinstance(language, str) or not language.strip():
        raise SettingsError(f"{path}: language must be a language code such as en or ko, not {language!r}")
    target = raw.get("target_oos_recall")
    try:
        return NluSettings(
            language=language.strip(),
            pipeline=str(pipeline).strip().lower(),
            expected_oos_rate=_number(path, "expected_oos_rate", raw.get("expected_oos_rate", DEFAULT_EXPECTED_OOS_RATE)),
            target_oos_recall=None if target is None else _number(path, "target_oos_recall", target),
        )
    except SettingsError as exc:
        message = str(exc)
        raise SettingsError(message if message.startswith(str(path)) else f"{path}: {message}") from None
