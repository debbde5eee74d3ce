"""A small neural-network library in NumPy, and the artifact format that carries trained
networks from the trainer to the service. Imports nothing but NumPy and the standard library.
"""

from .activations import ReLU, Sigmoid, Softmax, Tanh
from .artifact import Artifact, list_versions, load_artifact, parse_version, save_artifact
from .conv import Conv2D, MaxPool2D
from .errors import ArtifactError, ConfigError, DataError, InputError, ModelError
from .layers import Dense, Dropout, Flatten, Layer, Reshape, layer_from_config
from .losses import Loss, MeanSquaredError, SoftmaxCrossEntropy
from .network import Average, Sequential, ensemble
from .optimizers import SGD, Adam, Optimizer, RMSprop, make_optimizer
from .predictor import Predictor
from .schedules import Constant, CosineDecay, StepDecay

__all__ = [
    "SGD", "Adam", "Artifact", "Average", "ArtifactError", "ConfigError", "Constant", "Conv2D",
    "CosineDecay", "DataError", "Dense", "Dropout", "Flatten", "InputError", "Layer", "Loss",
    "MaxPool2D", "MeanSquaredError", "ModelError", "Optimizer", "Predictor", "RMSprop", "ReLU",
    "Reshape", "Sequential", "Sigmoid", "Softmax", "SoftmaxCrossEntropy", "StepDecay", "Tanh",
    "ensemble", "layer_from_config", "list_versions", "load_artifact", "make_optimizer",
    "parse_version",
    "save_artifact",
]
