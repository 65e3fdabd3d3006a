#!/usr/bin/env python3
# Regenerates the example propensity models and their reference outputs in this folder.
#
# Run from the repository root:
#
#   python3 -m venv venv && venv/bin/pip install tensorflow-cpu numpy && venv/bin/python examples/models/make_models.py
#
# Last run with TensorFlow 2.21.0 (Keras 3.15.1, NumPy 2.4.6, Python 3.11, x86-64 CPU).
#
# The Rust build and tests never run this script: they only read the files it writes
# (propensity.tflite, logistic.tflite, propensity-int8.tflite, propensity-dynamic.tflite,
# reference.json, reference-logistic.json, propensity.toml, logistic.toml). The data is
# synthetic; nothing here comes from a real household.
#
# Everything is seeded and TensorFlow's op determinism is enabled, so re-running with the
# same versions rewrites byte-identical files. Other TensorFlow/NumPy versions or CPUs may
# train slightly different weights; the reference outputs are always recomputed from the
# models written in the same run, so the two always agree with each other.
#
# ---------------------------------------------------------------------------------------
# Inputs (20 float32, in this order; "missing" is what the device feeds when the value is
# unknown or its owner has not consented to personalisation):
#
#   idx name                       range        missing  scale
#    0  fridge.butter.level        0-1          1.0      1
#    1  fridge.milk.level          0-1          1.0      1
#    2  fridge.cheese.level        0-1          1.0      1
#    3  fridge.vegetables.level    0-1          1.0      1
#    4  fridge.drinks.level        0-1          1.0      1
#    5  fridge.door.opens          0-40 (today) 0        1/40
#    6  ereader.books.finished     0-3 (today)  0        1/3
#    7  ereader.genre.crime        0-1 (share)  0        1
#    8  ereader.genre.cooking      0-1 (share)  0        1
#    9  ereader.genre.travel       0-1 (share)  0        1
#   10  ereader.reading.minutes    0-300        0        1/300
#   11  lockscreen.unlocks         0-150        0        1/150
#   12  context.hour               0-23         12       1/23
#   13  context.ambient_light      0-1          0.5      1
#   14  offer.value                0-10         -        1/10
#   15  offer.priority             0.5-3        -        1/3
#   16  offer.category:food        0/1          -        1
#   17  offer.category:books       0/1          -        1
#   18  offer.category:home        0/1          -        1
#   19  offer.personalised         0/1          -        1
#
# An offer whose category is none of food/books/home (media.*, leisure.*, services.*) has 0
# in all three category inputs; those are the offers typically shown on a lock screen.
#
# Ground truth (the probability that the household accepts the offer):
#
#   p = sigmoid(z + e),  e ~ Normal(0, 0.3)  (per-row noise), label ~ Bernoulli(p)
#
#   z = -1.0 + 0.25 * (value - 5) / 2.5 + 0.2 * (priority - 1)
#     + food  * ( 3.0 * (0.4 - min(butter, milk, cheese, vegetables, drinks))
#               + 0.8 * (min(door_opens, 30) / 30 - 0.25)
#               + 0.4 * [17 <= hour <= 20] )
#     + books * ( 3.0 * (max(crime, cooking, travel) - 0.35)
#               + 0.8 * min(books_finished, 2)
#               + 0.6 * (min(reading_minutes, 180) / 180 - 0.2) )
#     + home  * ( 1.2 * (cooking - 0.2) + 0.5 * (min(door_opens, 30) / 30 - 0.25) )
#     + other * ( 1.2 * [18 <= hour <= 22] - 0.6 * [hour <= 6]
#               + 0.6 * (min(unlocks, 100) / 100 - 0.3) + 0.4 * (0.5 - ambient_light) )
#     - 0.6 * personalised * [every personal input is at its missing value]
#
# where other = 1 - food - books - home. In words: food offers are accepted when dairy,
# produce or drinks run low and the fridge is opened often (a little more around dinner);
# book offers when a genre share is high or a book was just finished; home offers when the
# household reads cookbooks and cooks; lock-screen style offers in the evening, in a dim
# room and on a busy screen; higher value and priority help a little; a personalised offer
# to a household that shares nothing is slightly less welcome.
# ---------------------------------------------------------------------------------------

import json
import os
import pathlib
import random
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")

SEED = 20260101
OUT = pathlib.Path(__file__).resolve().parent

INPUTS = [
    # (name, missing, scale)
    ("fridge.butter.level", 1.0, 1.0),
    ("fridge.milk.level", 1.0, 1.0),
    ("fridge.cheese.level", 1.0, 1.0),
    ("fridge.vegetables.level", 1.0, 1.0),
    ("fridge.drinks.level", 1.0, 1.0),
    ("fridge.door.opens", 0.0, 1.0 / 40.0),
    ("ereader.books.finished", 0.0, 1.0 / 3.0),
    ("ereader.genre.crime", 0.0, 1.0),
    ("ereader.genre.cooking", 0.0, 1.0),
    ("ereader.genre.travel", 0.0, 1.0),
    ("ereader.reading.minutes", 0.0, 1.0 / 300.0),
    ("lockscreen.unlocks", 0.0, 1.0 / 150.0),
    ("context.hour", 12.0, 1.0 / 23.0),
    ("context.ambient_light", 0.5, 1.0),
    ("offer.value", None, 1.0 / 10.0),
    ("offer.priority", None, 1.0 / 3.0),
    ("offer.category:food", None, 1.0),
    ("offer.category:books", None, 1.0),
    ("offer.category:home", None, 1.0),
    ("offer.personalised", None, 1.0),
]
N_IN = len(INPUTS)
assert N_IN == 20
SCALE = np.array([s for _, _, s in INPUTS], dtype=np.float32)
MISSING = np.array([0.0 if m is None else m for _, m, _ in INPUTS], dtype=np.float32)
FRIDGE = slice(0, 6)
EREADER = slice(6, 11)
LOCKSCREEN = slice(11, 12)
PERSONAL = slice(0, 12)
(BUTTER, MILK, CHEESE, VEG, DRINKS, DOOR, FINISHED, CRIME, COOKING, TRAVEL, MINUTES,
 UNLOCKS, HOUR, LIGHT, VALUE, PRIORITY, FOOD, BOOKS, HOME, PERSONALISED) = range(N_IN)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    tf.keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# --- synthetic data ----------------------------------------------------------------------

def quantise(x, step):
    """Rounds to a multiple of a power-of-two step, so values are exact in float32 and JSON."""
    return np.round(x / step) * step


def sample_rows(rng, n):
    x = np.zeros((n, N_IN), dtype=np.float64)
    # Fridge: levels skew full, with a tail of nearly empty compartments.
    x[:, BUTTER:DRINKS + 1] = quantise(rng.beta(2.0, 1.4, size=(n, 5)), 1 / 256)
    x[:, DOOR] = np.minimum(rng.poisson(rng.uniform(2, 20, size=n)), 40)
    # E-reader: genre shares sum to at most 1 (the rest is other genres).
    shares = rng.dirichlet([0.7, 0.5, 0.4, 1.2], size=n)[:, :3]
    x[:, CRIME:TRAVEL + 1] = quantise(shares, 1 / 256)
    x[:, FINISHED] = rng.choice([0, 0, 0, 0, 0, 0, 1, 1, 2, 3], size=n)
    x[:, MINUTES] = np.minimum(quantise(rng.gamma(1.5, 35.0, size=n), 1.0), 300)
    # Lock screen.
    x[:, UNLOCKS] = np.minimum(rng.poisson(rng.uniform(10, 90, size=n)), 150)
    # Context: hour of the decision, and ambient light loosely following daylight.
    hour = rng.integers(0, 24, size=n)
    x[:, HOUR] = hour
    daylight = np.clip(np.sin((hour - 6) / 14 * np.pi), 0, None)
    x[:, LIGHT] = quantise(np.clip(0.15 + 0.6 * daylight + rng.normal(0, 0.15, size=n), 0, 1), 1 / 256)
    # Offer: category (food, books, home, other), value, priority, personalised.
    cat = rng.choice(4, size=n, p=[0.4, 0.25, 0.1, 0.25])
    x[:, FOOD] = cat == 0
    x[:, BOOKS] = cat == 1
    x[:, HOME] = cat == 2
    x[:, VALUE] = quantise(rng.uniform(0, 10, size=n), 0.5)
    x[:, PRIORITY] = quantise(rng.uniform(0.5, 3, size=n), 0.25)
    x[:, PERSONALISED] = rng.random(n) < np.where(cat < 2, 0.7, 0.3)

    # What the device feeds when it does not know or may not use a value:
    # - no personalise consent (25%): every personal input at its missing value;
    # - otherwise each device kind may be absent from the household or not yet reporting.
    no_consent = rng.random(n) < 0.25
    x[no_consent, PERSONAL] = MISSING[PERSONAL]
    for part, p in ((FRIDGE, 0.15), (EREADER, 0.3), (LOCKSCREEN, 0.2)):
        absent = rng.random(n) < p
        x[absent, part] = MISSING[part]
    x[rng.random(n) < 0.03, LIGHT] = MISSING[LIGHT]  # no light sensor
    return x.astype(np.float32)


def ground_truth_logit(x):
    x = x.astype(np.float64)
    food, books, home = x[:, FOOD], x[:, BOOKS], x[:, HOME]
    other = 1.0 - food - books - home
    hour = x[:, HOUR]
    door = np.minimum(x[:, DOOR], 30) / 30
    z = -1.0 + 0.25 * (x[:, VALUE] - 5) / 2.5 + 0.2 * (x[:, PRIORITY] - 1)
    z += food * (3.0 * (0.4 - x[:, BUTTER:DRINKS + 1].min(axis=1))
                 + 0.8 * (door - 0.25)
                 + 0.4 * ((hour >= 17) & (hour <= 20)))
    z += books * (3.0 * (x[:, CRIME:TRAVEL + 1].max(axis=1) - 0.35)
                  + 0.8 * np.minimum(x[:, FINISHED], 2)
                  + 0.6 * (np.minimum(x[:, MINUTES], 180) / 180 - 0.2))
    z += home * (1.2 * (x[:, COOKING] - 0.2) + 0.5 * (door - 0.25))
    z += other * (1.2 * ((hour >= 18) & (hour <= 22)) - 0.6 * (hour <= 6)
                  + 0.6 * (np.minimum(x[:, UNLOCKS], 100) / 100 - 0.3)
                  + 0.4 * (0.5 - x[:, LIGHT]))
    nothing_known = np.all(x[:, PERSONAL] == MISSING[PERSONAL], axis=1)
    z -= 0.6 * x[:, PERSONALISED] * nothing_known
    return z


def make_dataset(rng, n):
    x = sample_rows(rng, n)
    z = ground_truth_logit(x) + rng.normal(0, 0.3, size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float32)
    return x, y


# --- models ------------------------------------------------------------------------------

def build_mlp():
    return tf.keras.Sequential([
        tf.keras.Input(shape=(N_IN,), dtype="float32"),
        tf.keras.layers.Rescaling(scale=SCALE, name="scale"),
        tf.keras.layers.Dense(16, activation="relu", name="hidden1"),
        tf.keras.layers.Dense(8, activation="relu", name="hidden2"),
        tf.keras.layers.Dense(1, activation="sigmoid", name="propensity"),
    ], name="propensity_mlp")


def build_logistic():
    return tf.keras.Sequential([
        tf.keras.Input(shape=(N_IN,), dtype="float32"),
        tf.keras.layers.Rescaling(scale=SCALE, name="scale"),
        tf.keras.layers.Dense(1, activation="sigmoid", name="propensity"),
    ], name="propensity_logistic")


def train(model, x, y, epochs, lr):
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=lr),
                  loss="binary_crossentropy")
    model.fit(x, y, batch_size=256, epochs=epochs, shuffle=True, verbose=0)
    return model


def concrete_function(model):
    """A serving function with a dynamic batch dimension: input [None, 20] float32 -> [None, 1].

    The trained weights are copied into graph constants (Keras 3 keeps them in resource
    variables, which the converter would otherwise leave as VAR_HANDLE/READ_VARIABLE ops).
    The graph is the model's own: x * scale, then Dense layers as matmul + bias + activation.
    The converter folds the constant scale into the first layer's weights, so the .tflite
    files hold only FULLY_CONNECTED (with fused RELU) and LOGISTIC ops and take raw values.
    """
    scale = tf.constant(np.asarray(model.get_layer("scale").scale, dtype=np.float32))
    dense = [(tf.constant(layer.kernel.numpy()), tf.constant(layer.bias.numpy()), layer.activation.__name__)
             for layer in model.layers if isinstance(layer, tf.keras.layers.Dense)]
    assert [a for _, _, a in dense][-1] == "sigmoid" and all(a in ("relu", "sigmoid") for _, _, a in dense)

    @tf.function(input_signature=[tf.TensorSpec([None, N_IN], tf.float32, name="inputs")])
    def serve(x):
        h = tf.multiply(x, scale)
        for kernel, bias, activation in dense:
            h = tf.nn.bias_add(tf.matmul(h, kernel), bias)
            h = tf.nn.relu(h) if activation == "relu" else tf.sigmoid(h)
        return h

    return serve.get_concrete_function()


def to_tflite(model, quant=None, representative=None):
    cf = concrete_function(model)
    probe = sample_rows(np.random.default_rng(0), 256)
    diff = np.max(np.abs(cf(tf.constant(probe)).numpy() - model.predict(probe, verbose=0)))
    assert diff < 1e-5, f"exported graph differs from the Keras model by {diff}"
    converter = tf.lite.TFLiteConverter.from_concrete_functions([cf])
    if quant == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif quant == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


# --- evaluation --------------------------------------------------------------------------

def auc(y, score):
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), dtype=np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = y.sum(), (~y).sum()
    return (ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def interpreter(model_bytes, kernels="builtin"):
    # "builtin": TFLite's optimised kernels without the XNNPACK delegate; "reference": its
    # plain reference kernels; "xnnpack": the default interpreter (with XNNPACK).
    resolver = {
        "builtin": tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        "reference": tf.lite.experimental.OpResolverType.BUILTIN_REF,
        "xnnpack": tf.lite.experimental.OpResolverType.AUTO,
    }[kernels]
    it = tf.lite.Interpreter(model_content=model_bytes, num_threads=1,
                             experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    return it


def run_tflite(model_bytes, x, kernels="builtin"):
    """Runs a float or int8 model on a batch, resizing its dynamic batch dimension."""
    it = interpreter(model_bytes, kernels)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], [len(x), N_IN], strict=True)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        s, zp = inp["quantization"]
        xq = np.clip(np.round(x / s + zp), -128, 127).astype(np.int8)
        it.set_tensor(inp["index"], xq)
    else:
        it.set_tensor(inp["index"], x.astype(np.float32))
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        s, zp = out["quantization"]
        y = (y.astype(np.float32) - zp) * s
    return y.reshape(len(x))


def reference_rows(rng):
    """64 fixed rows: typical households, missing inputs, and edge values at range limits."""
    rows = []
    lo = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0, 0, 0, 0], np.float32)
    hi = np.array([1, 1, 1, 1, 1, 40, 3, 1, 1, 1, 300, 150, 23, 1, 10, 3, 1, 1, 1, 1], np.float32)
    no_cat = hi.copy()
    no_cat[FOOD:HOME + 1] = 0
    rows += [lo, hi, no_cat]
    # Nothing personal known (no consent), for each category, (not) personalised.
    for cat in (FOOD, BOOKS, HOME, None):
        for personalised in (0.0, 1.0):
            r = MISSING.copy()
            r[HOUR], r[LIGHT], r[VALUE], r[PRIORITY] = 19, 0.25, 4.0, 1.0
            if cat is not None:
                r[cat] = 1
            r[PERSONALISED] = personalised
            rows.append(r)
    # Hand-picked situations.
    base = np.array([0.75, 0.5, 0.625, 0.5, 0.875, 8, 0, 0.25, 0.125, 0.125, 30, 40, 12, 0.75,
                     3, 1, 0, 0, 0, 0], np.float32)
    for edit in (
        {BUTTER: 0.0625, FOOD: 1, PERSONALISED: 1, DOOR: 25, HOUR: 18},      # butter nearly gone
        {MILK: 0.0, VEG: 0.0, FOOD: 1, PERSONALISED: 1, DOOR: 40},           # empty shelves
        {FOOD: 1, DOOR: 2, HOUR: 3, LIGHT: 0.0},                             # full fridge at night
        {CRIME: 0.875, COOKING: 0.0, TRAVEL: 0.0, FINISHED: 1, BOOKS: 1},    # just finished a crime
        {TRAVEL: 1.0, CRIME: 0.0, COOKING: 0.0, MINUTES: 300, BOOKS: 1, PERSONALISED: 1},
        {FINISHED: 3, BOOKS: 1, VALUE: 10, PRIORITY: 3},
        {COOKING: 0.75, CRIME: 0.0, HOME: 1, DOOR: 30},                      # cookbook reader
        {HOUR: 21, LIGHT: 0.0625, UNLOCKS: 150},                             # evening lock screen
        {HOUR: 7, LIGHT: 1.0, UNLOCKS: 5, VALUE: 0.0, PRIORITY: 0.5},        # morning, cheap offer
        {HOUR: 23, LIGHT: 0.5, UNLOCKS: 0},                                  # light sensor missing
    ):
        r = base.copy()
        for k, v in edit.items():
            r[k] = v
        rows.append(r)
    # One device kind missing at a time.
    for part in (FRIDGE, EREADER, LOCKSCREEN):
        for cat in (FOOD, BOOKS):
            r = base.copy()
            r[part] = MISSING[part]
            r[cat], r[PERSONALISED] = 1, 1
            rows.append(r)
    # The rest: typical rows drawn like the training data.
    rows += list(sample_rows(rng, 64 - len(rows)))
    x = np.stack(rows).astype(np.float32)
    assert x.shape == (64, N_IN)
    assert np.all(x >= lo) and np.all(x <= hi), "reference rows must stay within the input ranges"
    return x


def write_reference(name, model_bytes, x, path):
    batch = run_tflite(model_bytes, x)
    single = np.array([run_tflite(model_bytes, x[i:i + 1])[0] for i in range(len(x))])
    diff = float(np.max(np.abs(batch - single)))
    assert diff <= 1e-6, f"{name}: batch and row-by-row outputs differ by {diff}"
    assert np.all((batch >= 0) & (batch <= 1))
    for kernels in ("reference", "xnnpack"):
        other = float(np.max(np.abs(batch - run_tflite(model_bytes, x, kernels))))
        print(f"{name}: {kernels} kernels differ from builtin by at most {other:.2e}")
        assert other <= 1e-6
    doc = {
        "model": name,
        "inputs": [[float(v) for v in row] for row in x],
        "outputs": [float(np.float32(v)) for v in batch],
        "tolerance": 1e-5,
        "tensorflow": tf.__version__,
    }
    # Python's float repr is the shortest string that round-trips the double, and every value
    # here is exactly a float32, so parsing as f32 or f64 gives back the same number.
    def dump(v):
        return json.dumps(v, separators=(", ", ": "))
    text = "{\n" + ",\n".join([
        f'  "model": {dump(doc["model"])}',
        '  "inputs": [\n' + ",\n".join("    " + dump(r) for r in doc["inputs"]) + "\n  ]",
        '  "outputs": [\n' + ",\n".join("    " + dump(o) for o in doc["outputs"]) + "\n  ]",
        f'  "tolerance": {dump(doc["tolerance"])}',
        f'  "tensorflow": {dump(doc["tensorflow"])}',
    ]) + "\n}\n"
    assert json.loads(text) == doc
    path.write_text(text)
    return batch, diff


def write_manifest(path, tflite_name, model_name, description):
    lines = [
        f"# Inputs of examples/models/{tflite_name}, in the order of its input tensor.",
        f"# {description}",
        "# A feature input is fed its `missing` value when the device has no value for it or the",
        "# household's consent does not allow reading it; offer inputs are always known.",
        "# Written by make_models.py.",
        "",
        f'name = "{model_name}"',
    ]
    for name, missing, _ in INPUTS:
        lines += ["", "[[input]]", f'name = "{name}"']
        if missing is not None:
            lines.append(f"missing = {float(missing)!r}")
    path.write_text("\n".join(lines) + "\n")


def describe(name, model_bytes):
    it = interpreter(model_bytes)
    for kind, details in (("input", it.get_input_details()), ("output", it.get_output_details())):
        for d in details:
            print(f"  {name} {kind} {d['name']!r}: dtype={np.dtype(d['dtype']).name} "
                  f"shape={d['shape'].tolist()} shape_signature={d['shape_signature'].tolist()} "
                  f"quantization={d['quantization']}")


def main():
    seed_everything(SEED)
    rng = np.random.default_rng(SEED)
    x, y = make_dataset(rng, 50_000)
    n_train = 40_000
    x_tr, y_tr, x_te, y_te = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    print(f"data: {len(x)} rows, {y.mean():.3f} accepted, "
          f"{np.mean(np.all(x[:, PERSONAL] == MISSING[PERSONAL], axis=1)):.3f} with nothing personal known")

    mlp = train(build_mlp(), x_tr, y_tr, epochs=30, lr=3e-3)
    logistic = train(build_logistic(), x_tr, y_tr, epochs=30, lr=1e-2)

    def representative():
        for i in range(0, 2000, 10):
            yield [x_tr[i:i + 10]]

    files = {
        "propensity.tflite": to_tflite(mlp),
        "logistic.tflite": to_tflite(logistic),
        "propensity-int8.tflite": to_tflite(mlp, "int8", representative),
    }
    try:
        files["propensity-dynamic.tflite"] = to_tflite(mlp, "dynamic")
    except Exception as e:  # noqa: BLE001 - optional artefact
        print(f"propensity-dynamic.tflite: conversion failed, not written: {e}")
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    if "propensity-dynamic.tflite" in files:
        types = {np.dtype(t["dtype"]).name for t in interpreter(files["propensity-dynamic.tflite"]).get_tensor_details()}
        print(f"propensity-dynamic.tflite tensor types: {sorted(types)}"
              + ("" if "int8" in types else " (nothing quantized: every weight tensor has fewer than"
                 " the 1024 elements dynamic-range quantization needs, so this is a float model)"))

    oracle = 1 / (1 + np.exp(-ground_truth_logit(x_te)))
    print(f"held-out ({len(x_te)} rows) AUC, ground truth without noise: {auc(y_te, oracle):.4f}")
    for name, data in files.items():
        p = run_tflite(data, x_te)
        acc = np.mean((p >= 0.5) == (y_te == 1))
        print(f"held-out AUC {name}: {auc(y_te, p):.4f}  accuracy@0.5: {acc:.4f}")

    ref_x = reference_rows(np.random.default_rng(SEED + 1))
    for name, out in (("propensity.tflite", "reference.json"), ("logistic.tflite", "reference-logistic.json")):
        batch, diff = write_reference(name, files[name], ref_x, OUT / out)
        print(f"{out}: 64 rows, outputs {batch.min():.4f}..{batch.max():.4f}, "
              f"batch vs row-by-row max diff {diff:.2e}")

    write_manifest(OUT / "propensity.toml", "propensity.tflite", "propensity-mlp",
                   "A 16-8 ReLU MLP giving the propensity in [0, 1].")
    write_manifest(OUT / "logistic.toml", "logistic.tflite", "propensity-logistic",
                   "A logistic regression giving the propensity in [0, 1].")

    for name, data in files.items():
        describe(name, data)
        try:
            tf.lite.experimental.Analyzer.analyze(model_content=data)
        except Exception as e:  # noqa: BLE001 - diagnostics only
            print(f"  (analyzer unavailable: {e})")
    for name in sorted(files) + ["reference.json", "reference-logistic.json", "propensity.toml", "logistic.toml"]:
        print(f"{name}: {(OUT / name).stat().st_size} bytes")


if __name__ == "__main__":
    main()
