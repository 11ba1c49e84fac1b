"""Dangol's NLU: Rasa-format training data, a built-in classifier and extractors, a Rasa HTTP backend.

Imports none of Dangol's other packages, so the bot can swap it for a Rasa
server without the rest of the service noticing.
"""

from nlu.training_data import Example, EntityAnnotation, TrainingData, TrainingDataError, load_training_data

__all__ = [
    "EntityAnnotation",
    "Example",
    "TrainingData",
    "TrainingDataError",
    "load_training_data",
]
