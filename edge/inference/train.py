"""Small numpy trainers for the demo backbones (digits MLP, conv net), no framework needed."""

from __future__ import annotations

import numpy as np

from edge.inference.graph import Conv2D, Dense, Flatten, FloatNet, Pool2D, patches


def load_digits_data(image_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits (1,797 samples, offline) scaled to [0, 1]; 8x8 flat or NHWC images."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        from edge.errors import ConfigError

        raise ConfigError("the digits data set needs scikit-learn: pip install scikit-learn") \
            from exc
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    if image_size == 8:
        return x, d.target.astype(np.int64)
    rep = image_size // 8
    img = np.kron(x.reshape(-1, 8, 8), np.ones((rep, rep), np.float32))
    lead = (image_size - 8 * rep) // 2
    trail = image_size - 8 * rep - lead
    img = np.pad(img, ((0, 0), (lead, trail), (lead, trail)))
    return img[..., None].astype(np.float32), d.target.astype(np.int64)


def _softmax_grad(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = float(-np.log(p[np.arange(len(y)), y] + 1e-12).mean())
    p[np.arange(len(y)), y] -= 1
    return loss, p / len(y)


def train_mlp(x: np.ndarray, y: np.ndarray, hidden: int = 32, classes: int = 10,
              epochs: int = 60, lr: float = 0.1, seed: int = 0) -> FloatNet:
    """A ReLU MLP ``in -> hidden -> classes`` trained with minibatch SGD on cross-entropy."""
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, np.sqrt(2 / x.shape[1]), (x.shape[1], hidden)).astype(np.float32)
    w2 = rng.normal(0, np.sqrt(1 / hidden), (hidden, classes)).astype(np.float32)
    b1, b2 = np.zeros(hidden, np.float32), np.zeros(classes, np.float32)
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), max(len(x) // 32, 1)):
            h = np.maximum(x[idx] @ w1 + b1, 0)
            _, g = _softmax_grad(h @ w2 + b2, y[idx])
            gh = (g @ w2.T) * (h > 0)
            w2 -= lr * h.T @ g
            b2 -= lr * g.sum(0)
            w1 -= lr * x[idx].T @ gh
            b1 -= lr * gh.sum(0)
    return FloatNet((x.shape[1],), (Dense(w1, b1), Dense(w2, b2, relu=False)))


def train_convnet(x: np.ndarray, y: np.ndarray, channels: int = 8, classes: int = 10,
                  epochs: int = 8, lr: float = 0.05, seed: int = 0) -> FloatNet:
    """CONV 3x3 + ReLU + 2x2 max pool + dense, trained with minibatch SGD (NHWC input)."""
    rng = np.random.default_rng(seed)
    h, w, c = x.shape[1:]
    wc = rng.normal(0, np.sqrt(2 / (9 * c)), (channels, 3, 3, c)).astype(np.float32)
    bc = np.zeros(channels, np.float32)
    ph, pw = (h - 2) // 2, (w - 2) // 2
    feat = ph * pw * channels
    wd = rng.normal(0, np.sqrt(1 / feat), (feat, classes)).astype(np.float32)
    bd = np.zeros(classes, np.float32)
    for _ in range(epochs):
        for idx in np.array_split(rng.permutation(len(x)), max(len(x) // 32, 1)):
            p = patches(x[idx], 3, 1, "VALID", 0.0)  # (n, h-2, w-2, 3, 3, c)
            cols = p.reshape(len(idx), h - 2, w - 2, -1)
            a = np.maximum(cols @ wc.reshape(channels, -1).T + bc, 0)
            crop = a[:, : 2 * ph, : 2 * pw].reshape(len(idx), ph, 2, pw, 2, channels)
            pooled = crop.max(axis=(2, 4))
            _, g = _softmax_grad(pooled.reshape(len(idx), -1) @ wd + bd, y[idx])
            gp = (g @ wd.T).reshape(pooled.shape)
            wd -= lr * pooled.reshape(len(idx), -1).T @ g
            bd -= lr * g.sum(0)
            mask = crop == pooled[:, :, None, :, None, :]
            ga = np.zeros_like(a)
            ga[:, : 2 * ph, : 2 * pw] = (mask * gp[:, :, None, :, None, :]).reshape(
                len(idx), 2 * ph, 2 * pw, channels)
            ga *= a > 0
            wc -= lr * (ga.reshape(-1, channels).T @ cols.reshape(-1, cols.shape[-1])).reshape(
                wc.shape)
            bc -= lr * ga.sum(axis=(0, 1, 2))
    return FloatNet((h, w, c), (Conv2D(wc, bc), Pool2D("max"), Flatten(),
                                Dense(wd, bd, relu=False)))


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy."""
    return float((np.argmax(logits, axis=1) == y).mean())
