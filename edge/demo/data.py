"""The demo's data: digits split three ways, a non-IID partition, the backbone and a reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.inference.graph import FloatNet

PUBLIC_FRACTION = 0.25
TEST_FRACTION = 0.20
MIN_PER_DEVICE = 12
HIDDEN = 32
FEATURES = 16
CLASSES = 10
PARAMS = FEATURES * CLASSES + CLASSES  # the private head's coordinates (W and b)


@dataclass(frozen=True)
class Split:
    """The public (backbone) split, the held-out test split and each device's private samples."""

    public_x: np.ndarray
    public_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    devices: list[tuple[np.ndarray, np.ndarray]]
    resampled: bool = False  # drawn with replacement: more devices than disjoint sets

    @property
    def private_count(self) -> int:
        """Samples held by the devices altogether."""
        return sum(len(y) for _, y in self.devices)


def dirichlet_partition(labels: np.ndarray, devices: int, alpha: float,
                        rng: np.random.Generator, min_size: int = MIN_PER_DEVICE
                        ) -> list[np.ndarray]:
    """Index sets per device: each class spread over devices by Dirichlet(alpha) proportions.

    Redraws until every device has at least ``min_size`` samples (the usual non-IID recipe).
    """
    if devices * min_size > len(labels):
        raise ConfigError(f"{len(labels)} private samples cannot give {devices} devices "
                          f"{min_size} each: use fewer devices")
    for _attempt in range(1000):
        parts: list[list[int]] = [[] for _ in range(devices)]
        for cls in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == cls))
            shares = rng.dirichlet(np.full(devices, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for part, chunk in zip(parts, np.split(idx, cuts), strict=True):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ConfigError(f"no Dirichlet({alpha}) partition gave every one of {devices} devices "
                      f"{min_size} samples in 1000 draws: raise alpha or use fewer devices")


def dirichlet_resample(labels: np.ndarray, devices: int, alpha: float,
                       rng: np.random.Generator, size: int = MIN_PER_DEVICE
                       ) -> list[np.ndarray]:
    """Index sets per device drawn *with replacement*, for more devices than the samples
    can be split over: each device gets ``size`` samples whose classes follow its own
    Dirichlet(alpha) mixture (the same non-IID skew as ``dirichlet_partition``); devices
    share samples, so the private sets overlap and the reference sees duplicates."""
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts = []
    for _ in range(devices):
        counts = rng.multinomial(size, rng.dirichlet(np.full(len(by_class), alpha)))
        idx = [rng.choice(pool, n, replace=True) for pool, n in zip(by_class, counts,
                                                                    strict=True) if n]
        parts.append(np.sort(np.concatenate(idx)).astype(np.int64))
    return parts


def split_digits(devices: int, alpha: float, seed: int,
                 min_size: int = MIN_PER_DEVICE) -> Split:
    """Digits shuffled with ``seed``: public, test, and a Dirichlet partition of the rest.

    With more devices than the private samples give ``min_size`` each, the devices' sets
    are drawn with replacement instead (``dirichlet_resample``; ``Split.resampled``)."""
    from edge.inference.train import load_digits_data

    x, y = load_digits_data(8)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    n_pub, n_test = int(len(x) * PUBLIC_FRACTION), int(len(x) * TEST_FRACTION)
    priv_x, priv_y = x[n_pub + n_test:], y[n_pub + n_test:]
    resampled = devices * min_size > len(priv_y)
    parts = (dirichlet_resample(priv_y, devices, alpha, rng, min_size) if resampled
             else dirichlet_partition(priv_y, devices, alpha, rng, min_size))
    return Split(x[:n_pub], y[:n_pub], x[n_pub:n_pub + n_test], y[n_pub:n_pub + n_test],
                 [(priv_x[p], priv_y[p]) for p in parts], resampled)


@dataclass(frozen=True)
class DemoBackbone:
    """The int8 feature extractor: ``.tflite`` bytes, its metadata and a loaded interpreter."""

    tflite: bytes
    metadata: dict[str, Any]
    runner: Any

    def features(self, x: np.ndarray) -> np.ndarray:
        """Dequantized int8 features of raw inputs, through TFLite (as a board computes them)."""
        return np.asarray(self.runner.run(np.asarray(x, np.float32)), np.float32)


def train_extractor(x: np.ndarray, y: np.ndarray, *, hidden: int = HIDDEN,
                    features: int = FEATURES, classes: int = CLASSES, epochs: int = 60,
                    lr: float = 0.1, seed: int = 0) -> FloatNet:
    """Train 64→hidden (ReLU)→features (linear) with a temporary classifier, then drop it.

    The linear bottleneck is standardized on the training data (folded into its weights), so
    the head sees zero-mean, unit-variance features: well conditioned for DP-SGD.
    """
    from edge.inference.graph import Dense, FloatNet

    rng = np.random.default_rng(seed)
    dims = (x.shape[1], hidden, features, classes)
    ws = [rng.normal(0, np.sqrt((2 if i == 0 else 1) / dims[i]), (dims[i], dims[i + 1]))
          for i in range(3)]
    bs = [np.zeros(d) for d in dims[1:]]
    onehot = np.eye(classes)
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), max(len(x) // 32, 1)):
            h = np.maximum(x[idx] @ ws[0] + bs[0], 0)
            f = h @ ws[1] + bs[1]
            z = f @ ws[2] + bs[2]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            g = (p / p.sum(axis=1, keepdims=True) - onehot[y[idx]]) / len(idx)
            gf = g @ ws[2].T
            gh = (gf @ ws[1].T) * (h > 0)
            for i, (a, grad) in enumerate(((x[idx], gh), (h, gf), (f, g))):
                ws[i] -= lr * a.T @ grad
                bs[i] -= lr * grad.sum(axis=0)
    f = np.maximum(x @ ws[0] + bs[0], 0) @ ws[1] + bs[1]
    mu, sd = f.mean(axis=0), f.std(axis=0) + 1e-6
    return FloatNet((x.shape[1],), (
        Dense(ws[0].astype(np.float32), bs[0].astype(np.float32)),
        Dense((ws[1] / sd).astype(np.float32), ((bs[1] - mu) / sd).astype(np.float32),
              relu=False)))


def build_backbone(x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> DemoBackbone:
    """Train the feature extractor on the public split, quantize it, build the int8 TFLite."""
    from edge.inference.backbone import Backbone, InferenceConfig
    from edge.inference.builder import build_tflite
    from edge.inference.demo import metadata_for
    from edge.inference.graph import quantize_net

    qnet = quantize_net(train_extractor(x, y, seed=seed), x)
    tflite = build_tflite(qnet, f"edge demo digits feature extractor 64->{HIDDEN}->{FEATURES}")
    metadata = metadata_for(qnet)
    runner = Backbone.from_verified(tflite, metadata, InferenceConfig(npu_delegate="none"))
    return DemoBackbone(tflite, metadata, runner)


def softmax_regression(x: np.ndarray, y: np.ndarray, *, classes: int = CLASSES,
                       epochs: int = 300, lr: float = 0.5, seed: int = 0
                       ) -> tuple[np.ndarray, np.ndarray]:
    """A non-private head (W, b) by full-batch gradient descent on cross-entropy."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.01, (x.shape[1], classes))
    b = np.zeros(classes)
    onehot = np.eye(classes)[y]
    xs = x.astype(np.float64)
    for _ in range(epochs):
        z = xs @ w + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / len(y)
        w -= lr * xs.T @ g
        b -= lr * g.sum(axis=0)
    return w.astype(np.float32), b.astype(np.float32)


def head_accuracy(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the head on features."""
    return float((np.argmax(x @ w + b, axis=1) == y).mean())
