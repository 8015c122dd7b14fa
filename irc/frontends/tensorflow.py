"""TensorFlow and Keras through tf2onnx.

tf2onnx's ``from_keras`` does not work with Keras 3, so every Keras model goes
through a ``tf.function`` with an explicit input signature; SavedModels go
through their signature function. Either way the user's input names come from
the signature and the output names are restored after conversion.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import IrcError, ModelError
from .options import ImportOptions
from .source import Conversion, Source, avoid_llvm_clash, require


def _tf():
    """Import TensorFlow and tf2onnx quietly (they log a lot at import and conversion)."""
    require("tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules:
        avoid_llvm_clash()
    import tensorflow as tf
    import tf2onnx

    # tf2onnx logs each unsupported op at ERROR level; irc reports them itself, in one line.
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    return tf, tf2onnx


def convert(source: Source, options: ImportOptions) -> Conversion:
    """Convert whatever ``source`` names: Keras model, tf.function, SavedModel, .keras/.h5, .tflite."""
    _tf()
    if source.obj is not None:
        return _from_object(source.obj, source.spec, options)
    path = source.path
    suffix = path.suffix.lower()
    if path.is_dir():
        return from_saved_model(path, options)
    if suffix in (".keras", ".h5", ".hdf5"):
        return from_keras(_load_keras(path), options)
    if suffix == ".tflite":
        return from_tflite(path, options)
    raise ModelError(f"{path}: not a TensorFlow model: expected a SavedModel directory, "
                     ".keras, .h5 or .tflite")


def _load_keras(path: Path):
    """keras.models.load_model in safe mode: a Lambda layer's Python code is never deserialized."""
    import keras

    try:
        return keras.models.load_model(str(path), compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError/OSError/TypeError for bad files
        text = str(exc)
        if "safe_mode" in text or "arbitrary code" in text:
            raise ModelError(f"{path}: holds Python code (a Lambda layer); irc never deserializes "
                             "code from a model file: pass a Python spec 'pkg.module:factory' that "
                             "builds the model") from None
        hint = ("; for custom layers pass a Python spec 'pkg.module:factory' that imports them"
                if "Unknown" in text or "custom" in text else "")
        raise ModelError(f"{path}: Keras cannot load it ({_first_line(exc)}){hint}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _is_keras_model(obj: Any) -> bool:
    try:
        import keras
    except ImportError:
        return False
    return isinstance(obj, keras.Model)


def _from_object(obj: Any, spec: str, options: ImportOptions) -> Conversion:
    _tf()
    if _is_keras_model(obj):
        return from_keras(obj, options)
    if hasattr(obj, "get_concrete_function"):
        return from_tf_function(obj, options, spec)
    raise ModelError(f"{spec}: a {type(obj).__name__} is neither a Keras model nor a tf.function")


# -- signatures -----------------------------------------------------------------


def _specs(names: Sequence[str], shapes: Sequence[Sequence[int | None]], dtypes: Sequence[Any],
           options: ImportOptions) -> list:
    """TensorSpecs named after the model's inputs, with --input-shape/--dynamic-batch applied."""
    tf, _ = _tf()
    options.check_names(list(names))
    specs = []
    for i, (name, shape, dtype) in enumerate(zip(names, shapes, dtypes, strict=True)):
        user = options.shape_for(name, i, len(names))
        if user is not None:
            shape = user.shape
            if user.dtype is not None:
                dtype = tf.as_dtype(user.dtype)
        shape = list(shape) if shape is not None else None
        if options.dynamic_batch and shape:
            shape[0] = None
        specs.append(tf.TensorSpec(shape, dtype, name=name))
    return specs


def _convert_function(fn, specs: list, output_names: list[str], options: ImportOptions,
                      label: str) -> Conversion:
    """tf2onnx on a tf.function returning a flat tuple; outputs renamed to ``output_names``."""
    _, tf2onnx = _tf()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = tf2onnx.convert.from_function(fn, input_signature=specs,
                                                     opset=options.target_opset)
    except IrcError:
        raise
    except Exception as exc:  # tf2onnx/TensorFlow raise many types while tracing and converting
        raise ModelError(f"tf2onnx cannot convert {label}: {type(exc).__name__}: {_first_line(exc)}") from None
    produced = [o.name for o in model.graph.output]
    renames = dict(zip(produced, output_names, strict=False)) if len(produced) == len(output_names) else {}
    return Conversion(model, None, "tensorflow", renames=renames)


def _as_tuple(result: Any) -> tuple:
    if isinstance(result, dict):
        return tuple(result.values())
    if isinstance(result, (list, tuple)):
        return tuple(result)
    return (result,)


def _numpy_outputs(names: list[str], result: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(t) for name, t in zip(names, _as_tuple(result), strict=True)}


# -- Keras ------------------------------------------------------------------------


def keras_output_names(model) -> list[str]:
    """The outputs' names: dict keys, else output_names (functional), else the producing layers."""
    structure = _keras_structure(model, "output")
    if isinstance(structure, dict):
        return list(structure)
    names = list(getattr(model, "output_names", None) or [])
    if not names:
        outputs = list(getattr(model, "outputs", None) or [])
        history = [getattr(t, "_keras_history", None) for t in outputs]
        names = [h.operation.name if h is not None else f"output_{i}" for i, h in enumerate(history)]
    if len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(names))]
    return names


def _keras_structure(model, which: str):
    try:
        return getattr(model, which)
    except (AttributeError, ValueError):
        return None


def _keras_caller(model, names: list[str], output_names: list[str]):
    """model(...) on tensors given in ``names`` order, in the input structure the model was built
    with (one tensor, a list or a dict); the outputs as a tuple in ``output_names`` order."""
    structure = _keras_structure(model, "input")
    keyed = isinstance(structure, dict)
    key_of = {tensor.name: key for key, tensor in structure.items()} if keyed else {}

    def call(tensors: list):
        if keyed:
            packed = {key_of[n]: t for n, t in zip(names, tensors, strict=True)}
        else:
            packed = tensors[0] if len(tensors) == 1 else list(tensors)
        result = model(packed, training=False)
        if isinstance(result, dict):
            return tuple(result[k] for k in output_names)
        return _as_tuple(result)

    return call


def from_keras(model, options: ImportOptions) -> Conversion:
    """A Keras 3 model, through a tf.function with an explicit input signature."""
    tf, _ = _tf()
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError):
        inputs = []
    if not inputs:
        raise ModelError("the Keras model has no defined inputs: build it with keras.Input(...) "
                         "(a Sequential model needs an Input layer or a first build() call)")
    names = [t.name for t in inputs]
    specs = _specs(names, [t.shape for t in inputs], [t.dtype for t in inputs], options)
    output_names = keras_output_names(model)
    call = _keras_caller(model, names, output_names)

    fn = tf.function(lambda *args: call(list(args)), input_signature=specs)
    conversion = _convert_function(fn, specs, output_names, options, f"Keras model {model.name!r}")

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = call([tf.constant(feeds[n]) for n in names])
        return {name: np.asarray(t) for name, t in zip(output_names, result, strict=True)}

    conversion.reference = reference
    return conversion


# -- tf.function ------------------------------------------------------------------


def from_tf_function(fn, options: ImportOptions, label: str) -> Conversion:
    """A tf.function: its own input_signature, or one built from --input-shape."""
    tf, _ = _tf()
    declared = getattr(fn, "input_signature", None)
    if declared:
        names = [s.name or f"input_{i}" for i, s in enumerate(declared)]
        specs = _specs(names, [s.shape for s in declared], [s.dtype for s in declared], options)
    else:
        import inspect

        names = list(inspect.signature(fn.python_function).parameters)
        for i, name in enumerate(names):
            if options.shape_for(name, i, len(names)) is None:
                raise ModelError(f"{label}: the tf.function has no input_signature; pass "
                                 f"--input-shape {name}:D0,D1,... for each argument")
        specs = _specs(names, [None] * len(names), [tf.float32] * len(names), options)
    concrete = fn.get_concrete_function(*specs)
    structured = concrete.structured_outputs
    if isinstance(structured, dict):
        output_names = list(structured)
    else:
        output_names = [f"output_{i}" for i in range(len(_as_tuple(structured)))]

    @tf.function(input_signature=specs)
    def flat(*args):
        return _as_tuple(fn(*args))

    conversion = _convert_function(flat, specs, output_names, options, f"tf.function {label!r}")

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return _numpy_outputs(output_names, fn(*[tf.constant(feeds[s.name]) for s in specs]))

    conversion.reference = reference
    return conversion


# -- SavedModel -------------------------------------------------------------------


def from_saved_model(path: Path, options: ImportOptions) -> Conversion:
    """A SavedModel directory, through the signature ``options.signature``."""
    tf, _ = _tf()
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TensorFlow raises OSError/ValueError/its own errors
        raise ModelError(f"{path}: TensorFlow cannot load the SavedModel ({_first_line(exc)})") from None
    signatures = dict(loaded.signatures)
    if options.signature not in signatures:
        available = ", ".join(sorted(signatures)) or "none"
        raise IrcError(f"{path}: no signature {options.signature!r} (available: {available}); "
                       "choose one with --signature")
    signature = signatures[options.signature]
    args, kwargs = signature.structured_input_signature
    if args:
        raise ModelError(f"{path}: signature {options.signature!r} takes positional inputs; "
                         "only keyword signatures (as tf.saved_model.save writes) are supported")
    names = sorted(kwargs)  # TensorFlow flattens signature dicts in key order
    specs = _specs(names, [kwargs[n].shape for n in names], [kwargs[n].dtype for n in names], options)
    output_names = sorted(signature.structured_outputs)

    @tf.function(input_signature=specs)
    def flat(*tensors):
        result = signature(**dict(zip(names, tensors, strict=True)))
        return tuple(result[k] for k in output_names)

    conversion = _convert_function(flat, specs, output_names, options,
                                   f"signature {options.signature!r} of {path}")

    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = signature(**{n: tf.constant(feeds[n]) for n in names})
        return {k: np.asarray(result[k]) for k in output_names}

    conversion.reference = reference
    return conversion


# -- TFLite -----------------------------------------------------------------------


def from_tflite(path: Path, options: ImportOptions) -> Conversion:
    """A .tflite flatbuffer; inputs and outputs get the names of its signature."""
    tf, tf2onnx = _tf()
    if options.input_shapes or options.dynamic_batch:
        raise IrcError("--input-shape and --dynamic-batch do not apply to .tflite files "
                       "(their shapes are fixed at conversion)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = tf2onnx.convert.from_tflite(str(path), opset=options.target_opset)
            # Reference kernels, no XNNPACK delegate: the plain TFLite semantics, and no log line.
            interpreter = tf.lite.Interpreter(
                model_path=str(path),
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except Exception as exc:  # tf2onnx raises many types on bad or unsupported flatbuffers
        raise ModelError(f"tf2onnx cannot convert {path}: {type(exc).__name__}: {_first_line(exc)}") from None
    renames = _tflite_signature_names(interpreter)
    conversion = Conversion(model, None, "tensorflow", renames=renames)
    signatures = interpreter.get_signature_list()
    if len(signatures) == 1:
        keys = next(iter(signatures.values()))
        conversion.input_order, conversion.output_order = list(keys["inputs"]), list(keys["outputs"])
    conversion.reference = _tflite_reference(interpreter, renames)
    return conversion


def _tflite_signature_names(interpreter) -> dict[str, str]:
    """Tensor name -> signature key, when the file has exactly one signature."""
    signatures = interpreter.get_signature_list()
    if len(signatures) != 1:
        return {}
    runner = interpreter.get_signature_runner(next(iter(signatures)))
    renames = {}
    for details in (runner.get_input_details(), runner.get_output_details()):
        for key, info in details.items():
            renames[info["name"]] = key
    return renames


def _tflite_reference(interpreter, renames: dict[str, str]):
    def reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = interpreter.get_input_details()
        for info in inputs:
            feed = feeds[renames.get(info["name"], info["name"])]
            if tuple(info["shape"]) != feed.shape:
                interpreter.resize_tensor_input(info["index"], feed.shape)
        interpreter.allocate_tensors()
        for info in inputs:
            interpreter.set_tensor(info["index"], feeds[renames.get(info["name"], info["name"])])
        interpreter.invoke()
        return {renames.get(info["name"], info["name"]): np.array(interpreter.get_tensor(info["index"]))
                for info in interpreter.get_output_details()}

    return reference
