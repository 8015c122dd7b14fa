"""Small Keras 3 models, one per layer irc must import (the tf2rust layer table and more).

``LAYER_MODELS`` maps a name to a ``KerasCase``: a zero-argument factory that
returns a seeded, built ``keras.Model``, and which file formats the model can be
saved in. Save them with ``save(model, path)`` (the suffix or a directory picks
the format). A spec for `irc import` is ``examples.models.keras_models:<factory>``,
e.g. ``examples.models.keras_models:dense``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from irc.frontends.source import avoid_llvm_clash

if "tensorflow" not in __import__("sys").modules:
    avoid_llvm_clash()  # TensorFlow's LLVM and Triton's cannot share a process: keep Triton out

import keras  # noqa: E402
from keras import layers  # noqa: E402


def _seed() -> None:
    keras.utils.set_random_seed(0)


def _single(input_shape: tuple[int, ...], *stack: layers.Layer, dtype: str = "float32",
            name: str = "model") -> keras.Model:
    """keras.Input named ``x`` followed by ``stack``, seeded."""
    inputs = keras.Input(input_shape, dtype=dtype, name="x")
    out = inputs
    for layer in stack:
        out = layer(out)
    return keras.Model(inputs, out, name=name)


def _with_random_biases(model: keras.Model) -> keras.Model:
    """Zero-initialized biases would hide a dropped bias add: give every bias random values."""
    rng = np.random.default_rng(1)
    for layer in model.layers:
        for weight in layer.weights:
            if "bias" in weight.path or "beta" in weight.path:
                weight.assign(rng.uniform(-0.5, 0.5, weight.shape).astype(weight.dtype))
    return model


def dense() -> keras.Model:
    _seed()
    return _with_random_biases(_single((8,), layers.Dense(6), name="dense"))


def conv1d() -> keras.Model:
    _seed()
    return _with_random_biases(_single((10, 4), layers.Conv1D(6, 3, activation="relu"), name="conv1d"))


def embedding() -> keras.Model:
    _seed()
    return _single((5,), layers.Embedding(10, 4), dtype="int32", name="embedding")


def flatten() -> keras.Model:
    _seed()
    return _single((4, 3), layers.Flatten(), layers.Dense(5), name="flatten")


def reshape() -> keras.Model:
    _seed()
    return _single((12,), layers.Reshape((3, 4)), name="reshape")


def _two_branches(merge: layers.Layer, name: str) -> keras.Model:
    _seed()
    x = keras.Input((6,), name="x")
    a = layers.Dense(4, name="branch_a")(x)
    b = layers.Dense(4, activation="tanh", name="branch_b")(x)
    return _with_random_biases(keras.Model(x, merge([a, b]), name=name))


def concatenate() -> keras.Model:
    return _two_branches(layers.Concatenate(), "concatenate")


def multiply() -> keras.Model:
    return _two_branches(layers.Multiply(), "multiply")


def add() -> keras.Model:
    return _two_branches(layers.Add(), "add")


def mean() -> keras.Model:
    """Mean as a reduction (tf2rust's "Mean"): keras.ops.mean over the time axis."""
    _seed()
    x = keras.Input((5, 4), name="x")
    return keras.Model(x, keras.ops.mean(x, axis=1), name="mean")


def batch_normalization() -> keras.Model:
    _seed()
    model = _single((6,), layers.BatchNormalization(), name="batch_normalization")
    rng = np.random.default_rng(2)
    bn = model.layers[-1]
    gamma, beta, mean_, var = (w.numpy() for w in bn.weights)
    bn.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.uniform(-0.5, 0.5, beta.shape),
                    rng.uniform(-0.5, 0.5, mean_.shape), rng.uniform(0.5, 1.5, var.shape)])
    return model


def max_pool1d() -> keras.Model:
    _seed()
    return _single((8, 3), layers.MaxPool1D(2), name="max_pool1d")


def average_pooling1d() -> keras.Model:
    _seed()
    return _single((8, 3), layers.AveragePooling1D(2), name="average_pooling1d")


def global_average_pooling1d() -> keras.Model:
    _seed()
    return _single((8, 3), layers.GlobalAveragePooling1D(), name="global_average_pooling1d")


def _activation(name: str, make_layer: Callable[[], layers.Layer]) -> Callable[[], keras.Model]:
    def factory() -> keras.Model:
        _seed()
        return _with_random_biases(_single((8,), layers.Dense(6), make_layer(),
                                           name=f"activation_{name}"))

    factory.__name__ = f"activation_{name}"
    factory.__doc__ = f"Dense followed by the {name} activation."
    return factory


activation_linear = _activation("linear", lambda: layers.Activation("linear"))
activation_relu = _activation("relu", lambda: layers.Activation("relu"))
activation_thresholded_relu = _activation("thresholded_relu", lambda: layers.ReLU(threshold=0.3))
activation_selu = _activation("selu", lambda: layers.Activation("selu"))
activation_sigmoid = _activation("sigmoid", lambda: layers.Activation("sigmoid"))
activation_softmax = _activation("softmax", lambda: layers.Activation("softmax"))
activation_softplus = _activation("softplus", lambda: layers.Activation("softplus"))
activation_softsign = _activation("softsign", lambda: layers.Activation("softsign"))
activation_tanh = _activation("tanh", lambda: layers.Activation("tanh"))


def conv2d() -> keras.Model:
    _seed()
    return _with_random_biases(_single((8, 8, 3), layers.Conv2D(4, 3, padding="same"), name="conv2d"))


def depthwise_conv2d() -> keras.Model:
    _seed()
    return _with_random_biases(_single((8, 8, 3), layers.DepthwiseConv2D(3, depth_multiplier=2),
                                       name="depthwise_conv2d"))


def separable_conv2d() -> keras.Model:
    _seed()
    return _with_random_biases(_single((8, 8, 3), layers.SeparableConv2D(4, 3), name="separable_conv2d"))


def max_pool2d() -> keras.Model:
    _seed()
    return _single((8, 8, 3), layers.MaxPool2D(2), name="max_pool2d")


def average_pooling2d() -> keras.Model:
    _seed()
    return _single((8, 8, 3), layers.AveragePooling2D(2), name="average_pooling2d")


def global_average_pooling2d() -> keras.Model:
    _seed()
    return _single((8, 8, 3), layers.GlobalAveragePooling2D(), name="global_average_pooling2d")


def dropout() -> keras.Model:
    _seed()
    return _with_random_biases(_single((8,), layers.Dense(6), layers.Dropout(0.5), name="dropout"))


def layer_normalization() -> keras.Model:
    _seed()
    model = _single((5, 6), layers.LayerNormalization(), name="layer_normalization")
    rng = np.random.default_rng(3)
    model.layers[-1].set_weights([rng.uniform(0.5, 1.5, 6), rng.uniform(-0.5, 0.5, 6)])
    return model


def lstm() -> keras.Model:
    _seed()
    return _with_random_biases(_single((5, 4), layers.LSTM(6), name="lstm"))


def gru() -> keras.Model:
    _seed()
    return _with_random_biases(_single((5, 4), layers.GRU(6), name="gru"))


def two_in_two_out() -> keras.Model:
    """Functional model: inputs ``image`` (8, 8, 3) and ``features`` (5,); outputs ``logits``, ``score``."""
    _seed()
    image = keras.Input((8, 8, 3), name="image")
    features = keras.Input((5,), name="features")
    h = layers.Conv2D(4, 3, activation="relu")(image)
    h = layers.GlobalAveragePooling2D()(h)
    f = layers.Dense(4, activation="relu")(features)
    joined = layers.Concatenate()([h, f])
    logits = layers.Dense(3, name="logits")(joined)
    score = layers.Dense(1, activation="sigmoid", name="score")(joined)
    return _with_random_biases(keras.Model([image, features], [logits, score], name="two_in_two_out"))


@dataclass(frozen=True)
class KerasCase:
    """A factory and the formats its model can be saved in besides .keras and SavedModel."""

    factory: Callable[[], keras.Model]
    h5: bool = True
    tflite: bool = True
    tflite_batch: int | None = None
    """A fixed batch for the .tflite file: TFLite lowers Keras 3 recurrent loops only with static shapes."""


LAYER_MODELS: dict[str, KerasCase] = {
    "dense": KerasCase(dense),
    "conv1d": KerasCase(conv1d),
    "embedding": KerasCase(embedding),
    "flatten": KerasCase(flatten),
    "reshape": KerasCase(reshape),
    "concatenate": KerasCase(concatenate),
    "multiply": KerasCase(multiply),
    "add": KerasCase(add),
    "mean": KerasCase(mean, h5=False),  # the legacy .h5 loader does not know keras.ops layers
    "batch_normalization": KerasCase(batch_normalization),
    "max_pool1d": KerasCase(max_pool1d),
    "average_pooling1d": KerasCase(average_pooling1d),
    "global_average_pooling1d": KerasCase(global_average_pooling1d),
    "activation_linear": KerasCase(activation_linear),
    "activation_relu": KerasCase(activation_relu),
    "activation_thresholded_relu": KerasCase(activation_thresholded_relu),
    "activation_selu": KerasCase(activation_selu),
    "activation_sigmoid": KerasCase(activation_sigmoid),
    "activation_softmax": KerasCase(activation_softmax),
    "activation_softplus": KerasCase(activation_softplus),
    "activation_softsign": KerasCase(activation_softsign),
    "activation_tanh": KerasCase(activation_tanh),
    "conv2d": KerasCase(conv2d),
    "depthwise_conv2d": KerasCase(depthwise_conv2d),
    "separable_conv2d": KerasCase(separable_conv2d),
    "max_pool2d": KerasCase(max_pool2d),
    "average_pooling2d": KerasCase(average_pooling2d),
    "global_average_pooling2d": KerasCase(global_average_pooling2d),
    "dropout": KerasCase(dropout),
    "layer_normalization": KerasCase(layer_normalization),
    "lstm": KerasCase(lstm, tflite_batch=1),
    "gru": KerasCase(gru, tflite_batch=1),
    "two_in_two_out": KerasCase(two_in_two_out),
}
"""Every Keras test model by name."""

FORMATS = ("keras", "saved_model", "h5", "tflite")


def save(model: keras.Model, path: str | Path, tflite_batch: int | None = None) -> Path:
    """Save in the format the path names: .keras, .h5, .tflite, or a SavedModel directory."""
    path = Path(path)
    if path.suffix == ".keras":
        model.save(path)
    elif path.suffix == ".h5":
        model.save(path)
    elif path.suffix == ".tflite":
        import tensorflow as tf

        if tflite_batch is not None:
            model = with_static_batch(model, tflite_batch)
        path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    else:
        model.export(str(path), verbose=False)
    return path


def with_static_batch(model: keras.Model, batch: int) -> keras.Model:
    """The same model (shared weights) called on inputs of a fixed batch size."""
    inputs = [keras.Input(batch_shape=(batch, *t.shape[1:]), dtype=t.dtype, name=t.name)
              for t in model.inputs]
    outputs = model(inputs[0] if len(inputs) == 1 else inputs)
    return keras.Model(inputs, outputs, name=f"{model.name}_batch{batch}")


def sample_inputs(model: keras.Model, batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs by input name (small non-negative integers for integer inputs)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for tensor in model.inputs:
        shape = (batch, *tensor.shape[1:])
        if np.dtype(tensor.dtype).kind in "iu":
            feeds[tensor.name] = rng.integers(0, 3, size=shape).astype(tensor.dtype)
        else:
            feeds[tensor.name] = rng.standard_normal(shape).astype(tensor.dtype)
    return feeds
