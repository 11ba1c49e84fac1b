"""Dangol's NLU: Rasa-format training data, a built-in classifier and extractors, a Rasa HTTP backend.

Imports none of Dangol's other packages, so the bot can swap it for a Rasa
server without the rest of the service noticing.
"""

from nlu.classifier import FALLBACK_INTENT, ClassifierConfig
from nlu.evaluate import evaluate
from nlu.model import Model, ModelError, load_model, train
from nlu.rasa_backend import Parser, RasaBackend
from nlu.data_files import load_training_data
from nlu.training_data import EntityAnnotation, Example, TrainingData, TrainingDataError

__all__ = [
    "FALLBACK_INTENT",
    "ClassifierConfig",
    "Model",
    "ModelError",
    "Parser",
    "RasaBackend",
    "evaluate",
    "load_model",
    "train",
    "EntityAnnotation",
    "Example",
    "TrainingData",
    "TrainingDataError",
    "load_training_data",
]
