"""TensorFlow objects named by Python specs in the import tests (fe_specs_tf:<name>)."""

import tensorflow as tf


@tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
def unsupported(x):
    """BesselI0e has no ONNX conversion in tf2onnx."""
    return tf.math.bessel_i0e(x) + 1.0


@tf.function
def affine(x, y):
    """No input_signature: the shapes come from --input-shape."""
    return {"sum": x * 2.0 + y, "diff": x - y}


@tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="features")])
def signed(features):
    return tf.nn.relu(features) * 3.0 - 1.0


def not_a_model():
    return 42


def needs_arguments(width):
    return width
