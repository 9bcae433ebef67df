"""The toy "steering clear" environment (seed 002 §3.1): synthetic attribute data, the
residual MLP classifier, and the steering task."""

from interp.toy.data import AttributeWorld
from interp.toy.model import ToyMLP, TrainConfig, accuracy, train_toy
from interp.toy.steering import SteerTask, evaluate, example_pairs

__all__ = ["AttributeWorld", "SteerTask", "ToyMLP", "TrainConfig", "accuracy", "evaluate", "example_pairs", "train_toy"]
