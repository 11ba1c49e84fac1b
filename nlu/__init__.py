"""Dangol's NLU: Rasa-format training data, a built-in classifier and extractors, a Rasa HTTP backend.

Imports none of Dangol's other packages, so the bot can swap it for a Rasa
server without the rest of the service noticing. `FALLBACK_INTENT` is the
one name of the "not understood" intent; use it rather than the literal.

The package's names load on first use (PEP 562): the bot's rules and the
message path's writer need the names, the data files and the fallback
constant, not scikit-learn and SciPy, which took a writer process 1.2 s and
about 60 MB to import for nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nlu.names import FALLBACK_INTENT, OOS_INTENT

if TYPE_CHECKING:
    from nlu.classifier import ClassifierConfig
    from nlu.data_files import load_training_data
    from nlu.embedding import EmbedExtraMissing
    from nlu.evaluation import evaluate
    from nlu.model import Model, ModelError, load_model
    from nlu.rasa_backend import Parser, RasaBackend
    from nlu.settings import NluSettings, SettingsError, read_settings
    from nlu.training import train
    from nlu.training_data import EntityAnnotation, Example, TrainingData, TrainingDataError

#: Each public name and the module that defines it.
_HOME = {
    "ClassifierConfig": "nlu.classifier",
    "load_training_data": "nlu.data_files",
    "EmbedExtraMissing": "nlu.embedding",
    "evaluate": "nlu.evaluation",
    "Model": "nlu.model",
    "ModelError": "nlu.model",
    "load_model": "nlu.model",
    "Parser": "nlu.rasa_backend",
    "RasaBackend": "nlu.rasa_backend",
    "NluSettings": "nlu.settings",
    "SettingsError": "nlu.settings",
    "read_settings": "nlu.settings",
    "train": "nlu.training",
    "EntityAnnotation": "nlu.training_data",
    "Example": "nlu.training_data",
    "TrainingData": "nlu.training_data",
    "TrainingDataError": "nlu.training_data",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'nlu' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOME])


__all__ = ["FALLBACK_INTENT", "OOS_INTENT", *_HOME]
