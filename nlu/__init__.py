"""Dangol's NLU: Rasa-format training data, a built-in classifier and extractors, a Rasa HTTP backend.

Imports none of Dangol's other packages, so the bot can swap it for a Rasa
server without the rest of the service noticing. `FALLBACK_INTENT` is the
one name of the "not understood" intent; use it rather than the literal.
"""

from nlu.classifier import ClassifierConfig
from nlu.data_files import load_training_data
from nlu.embedding import EmbedExtraMissing
from nlu.evaluate import evaluate
from nlu.model import Model, ModelError, load_model
from nlu.names import FALLBACK_INTENT, OOS_INTENT
from nlu.rasa_backend import Parser, RasaBackend
from nlu.settings import NluSettings, SettingsError, read_settings
from nlu.training import train
from nlu.training_data import EntityAnnotation, Example, TrainingData, TrainingDataError

__all__ = [
    "FALLBACK_INTENT",
    "OOS_INTENT",
    "ClassifierConfig",
    "EmbedExtraMissing",
    "Model",
    "ModelError",
    "NluSettings",
    "Parser",
    "RasaBackend",
    "SettingsError",
    "evaluate",
    "load_model",
    "read_settings",
    "train",
    "EntityAnnotation",
    "Example",
    "TrainingData",
    "TrainingDataError",
    "load_training_data",
]
