"""The notes' formulas transcribed line by line in NumPy (float64), as independent references.

Each class has ``init``/``update`` like a gradient transformation so that
``jaxopt_notes.testing.assert_equivalent`` can drive it; results are cast back to each
parameter's dtype only at the end of a step.
"""

import jax
import numpy as np


def _f64(tree):
    return jax.tree.map(lambda x: np.asarray(x, dtype=np.float64), tree)


def _cast_like(tree, like):
    return jax.tree.map(lambda x, ref: np.asarray(x).astype(np.asarray(ref).dtype), tree, like)


class NotesEwa:
    """Section 2-3: v = beta * v + (1 - beta) * theta; optionally v / (1 - beta**t)."""

    def __init__(self, beta, debias=False):
        self.beta, self.debias = beta, debias

    def init(self, params):
        return {"t": 0, "v": jax.tree.map(lambda p: np.zeros(np.shape(p)), params)}

    def update(self, grads, state, params=None):
        beta, t = self.beta, state["t"] + 1
        v = jax.tree.map(lambda v, g: beta * v + (1 - beta) * g, state["v"], _f64(grads))
        out = jax.tree.map(lambda v: v / (1 - beta**t), v) if self.debias else v
        return _cast_like(out, grads), {"t": t, "v": v}


class NotesMomentum:
    """Section 4: v_dW = beta * v_dW + (1 - beta) * dW; W = W - alpha * v_dW.
    ``dampened=False`` is the variant v = beta * v + dW."""

    def __init__(self, alpha, beta, dampened=True):
        self.alpha, self.beta, self.dampened = alpha, beta, dampened

    def init(self, params):
        return jax.tree.map(lambda p: np.zeros(np.shape(p)), params)

    def update(self, grads, v, params=None):
        beta = self.beta
        weight = (1 - beta) if self.dampened else 1.0
        v = jax.tree.map(lambda v, g: beta * v + weight * g, v, _f64(grads))
        return _cast_like(jax.tree.map(lambda v: -self.alpha * v, v), grads), v


class NotesRmsprop:
    """Section 5: S = beta * S + (1 - beta) * dW**2; W = W - alpha * dW / (sqrt(S) + eps)."""

    def __init__(self, alpha, beta, eps):
        self.alpha, self.beta, self.eps = alpha, beta, eps

    def init(self, params):
        return jax.tree.map(lambda p: np.zeros(np.shape(p)), params)

    def update(self, grads, s, params=None):
        beta, g64 = self.beta, _f64(grads)
        s = jax.tree.map(lambda s, g: beta * s + (1 - beta) * g**2, s, g64)
        step = jax.tree.map(lambda g, s: -self.alpha * g / (np.sqrt(s) + self.eps), g64, s)
        return _cast_like(step, grads), s


class NotesAdam:
    """Section 6: v, S moments; v_corr = v / (1 - beta1**t), S_corr = S / (1 - beta2**t);
    W = W - alpha * v_corr / (sqrt(S_corr) + eps)."""

    def __init__(self, alpha, beta1=0.9, beta2=0.999, eps=1e-8):
        self.alpha, self.beta1, self.beta2, self.eps = alpha, beta1, beta2, eps

    def init(self, params):
        zeros = jax.tree.map(lambda p: np.zeros(np.shape(p)), params)
        return {"t": 0, "v": zeros, "s": zeros}

    def update(self, grads, state, params=None):
        b1, b2, t, g64 = self.beta1, self.beta2, state["t"] + 1, _f64(grads)
        v = jax.tree.map(lambda v, g: b1 * v + (1 - b1) * g, state["v"], g64)
        s = jax.tree.map(lambda s, g: b2 * s + (1 - b2) * g**2, state["s"], g64)
        step = jax.tree.map(lambda v, s: -self.alpha * (v / (1 - b1**t)) / (np.sqrt(s / (1 - b2**t)) + self.eps), v, s)
        return _cast_like(step, grads), {"t": t, "v": v, "s": s}
