"""A small Flax (linen) CNN trained here, seeded, in seconds, on synthetic shapes (filled square,
disc, triangle, cross on a noisy background, random place, size and colour); exported by jax2onnx
(NHWC input, RGB in [0, 1]: fixtrace's ``raw`` preset). Its Grad-CAM oracle is jax.grad through
Flax perturbations (``Module.perturb``) on every conv and activation output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from real.common import RealModel, gradcam_from, require

LABELS = ["square", "disc", "triangle", "cross"]
SIZE = 32
PRESET = "raw"
SEED = 0
STEPS = 400
BATCH = 32


def draw(rng: np.random.Generator, label: int, size: int = SIZE) -> np.ndarray:
    """uint8 (size, size, 3): one shape of class ``label`` on a noisy background."""
    image = rng.normal(60, 25, (size, size, 3))
    radius = rng.uniform(0.18, 0.3) * size
    cy, cx = rng.uniform(radius + 1, size - radius - 1, 2)
    y, x = np.mgrid[:size, :size] + 0.5
    dy, dx = (y - cy) / radius, (x - cx) / radius
    if label == 0:
        mask = (np.abs(dy) <= 0.8) & (np.abs(dx) <= 0.8)
    elif label == 1:
        mask = dy**2 + dx**2 <= 1
    elif label == 2:
        mask = (dy <= 0.8) & (np.abs(dx) <= (dy + 1) * 0.55)
    else:
        mask = ((np.abs(dy) <= 0.25) | (np.abs(dx) <= 0.25)) & (np.abs(dy) <= 1) & (np.abs(dx) <= 1)
    image[mask] = rng.uniform(140, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def dataset(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, SIZE, SIZE, 3) float32 in [0, 1] and (n,) labels."""
    labels = rng.integers(0, len(LABELS), n)
    return np.stack([draw(rng, int(k)) for k in labels]).astype(np.float32) / 255, labels


def model_class() -> Any:
    """The Flax module class (defined here so that flax is imported only when building)."""
    import flax.linen as nn
    import jax.numpy as jnp

    class ShapesCNN(nn.Module):
        """conv-relu-max pool x2, conv-relu x2, global average pool, dense. Every conv and relu
        output is sown (``intermediates``) and perturbable (``perturbations``) under its name."""

        @nn.compact
        def __call__(self, x):
            def tap(name: str, value):
                self.sow("intermediates", name, value)
                return self.perturb(name, value)

            for i, (features, pool) in enumerate([(8, True), (16, True), (16, False), (16, False)]):
                x = tap(f"conv{i}", nn.Conv(features, (3, 3), padding="SAME", name=f"Conv_{i}")(x))
                x = tap(f"relu{i}", nn.relu(x))
                if pool:
                    x = nn.max_pool(x, window_shape=(2, 2), strides=(2, 2))  # keywords: jax2onnx patches it so
            return nn.Dense(len(LABELS), name="head")(jnp.mean(x, axis=(1, 2)))

    return ShapesCNN


def init_params(model: Any, rng: np.random.Generator) -> Any:
    """He-normal kernels and zero biases drawn by numpy: ``model.init`` would compile Flax's
    initialisers, 10-30 s on a 2-core machine against none here."""
    import jax
    import jax.numpy as jnp

    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))["params"]

    def draw(path, leaf):
        if path[-1].key == "bias":
            return jnp.zeros(leaf.shape, leaf.dtype)
        fan_in = int(np.prod(leaf.shape[:-1]))
        return jnp.asarray(rng.normal(0, np.sqrt(2 / fan_in), leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, shapes)


def train(seed: int = SEED, steps: int = STEPS) -> tuple[Any, Any, float]:
    """The trained module, its params, and accuracy on 512 fresh samples."""
    import jax
    import optax

    model = model_class()()
    rng = np.random.default_rng(seed)
    params = init_params(model, rng)
    optimiser = optax.adam(3e-3)
    state = optimiser.init(params)

    @jax.jit
    def step(params, state, x, y):
        def loss(p):
            logits = model.apply({"params": p}, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        grads = jax.grad(loss)(params)
        updates, state = optimiser.update(grads, state)
        return optax.apply_updates(params, updates), state

    for _ in range(steps):
        x, y = dataset(rng, BATCH)
        params, state = step(params, state, x, y)
    x, y = dataset(rng, 512)
    accuracy = float((np.asarray(jax.jit(model.apply)({"params": params}, x)).argmax(1) == y).mean())
    return model, params, accuracy


class JaxOracle:
    """The trained Flax CNN seen through its sown intermediates (NHWC, returned as NCHW)."""

    def __init__(self, model: Any, params: Any) -> None:
        import jax

        self.jax, self.model, self.params = jax, model, params

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.apply({"params": self.params}, batch))

    def _intermediates(self, batch: np.ndarray) -> dict[str, Any]:
        _, state = self.model.apply({"params": self.params}, batch, mutable=["intermediates"])
        return {name: values[0] for name, values in state["intermediates"].items()}

    def activations(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return {name: np.asarray(v).transpose(0, 3, 1, 2) for name, v in self._intermediates(batch).items()}

    def gradcam(self, batch: np.ndarray, layer: str, targets: list[int]) -> np.ndarray:
        jnp = self.jax.numpy
        feature = self._intermediates(batch)[layer]
        perturbations = {name: jnp.zeros_like(v) for name, v in self._intermediates(batch).items()}
        picks = jnp.asarray(np.eye(self.logits(batch).shape[1], dtype=np.float32)[targets])

        def score(perturbations):
            logits = self.model.apply({"params": self.params, "perturbations": perturbations}, batch)
            return (logits * picks).sum()

        grads = self.jax.grad(score)(perturbations)[layer]
        to_nchw = (0, 3, 1, 2)
        return gradcam_from(np.asarray(feature).transpose(to_nchw), np.asarray(grads).transpose(to_nchw))


def sample_photo() -> tuple[np.ndarray, int]:
    """A held-out drawing (a triangle, seed 1) and its class."""
    label = LABELS.index("triangle")
    return draw(np.random.default_rng(1), label), label


def build(cache: Path) -> RealModel:
    """Train the CNN and export it to ``cache/flax_shapes.onnx`` with jax2onnx.

    Raises:
        MissingPackage: jax, flax, optax or jax2onnx is missing.
    """
    require("jax", "flax", "optax", "jax2onnx", install="pip install jax flax optax jax2onnx")
    from exporters import export_jax

    t0 = time.perf_counter()
    model, params, accuracy = train()
    seconds = time.perf_counter() - t0
    path = Path(cache) / "flax_shapes.onnx"
    example = np.zeros((1, SIZE, SIZE, 3), np.float32)
    export_jax(lambda x: model.apply({"params": params}, x), example, path, preset=PRESET, labels=LABELS)
    oracle = JaxOracle(model, params)
    photo, label = sample_photo()
    return RealModel(
        name="flax-shapes",
        path=path,
        exporter="Flax linen -> jax2onnx (export_jax)",
        preset=PRESET,
        photo=photo,
        expected=label,
        labels=LABELS,
        logits=oracle.logits,
        activations=oracle.activations,
        gradcam=oracle.gradcam,
        notes={"train_seconds": round(seconds, 1), "accuracy": accuracy},
    )
