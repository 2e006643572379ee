"""torch.optim's documented algorithms transcribed line by line in NumPy, as independent references.

Transcribed from the pseudo-code in the documentation of torch 2.13 (``torch.optim.SGD``,
``Adam``, ``AdamW``, ``RMSprop`` and ``torch.optim.lr_scheduler``'s ``StepLR``,
``MultiStepLR``, ``ExponentialLR``, ``LambdaLR``, ``ReduceLROnPlateau``), and checked against
torch 2.13.0's behaviour by ``tests/test_torch_real.py``. Nothing here imports jaxopt_notes or
torch.

The optimizers follow the ``init``/``update`` protocol so that
``jaxopt_notes.testing.assert_equivalent`` can drive them: ``update`` returns the step
``theta_t - theta_{t-1}`` of the pseudo-code, computed in float64 from the float64 state and
the current parameters, and cast to each parameter's dtype only at the end. Complex
parameters are stepped as pairs of real numbers, as torch's ``view_as_real`` does. The
schedulers keep torch's mutable rate: each ``step()`` multiplies or sets the optimizer's
``lr`` as torch's chainable form does, and :class:`EpochLoop` calls ``step()`` at each epoch's
end, the way a torch training loop calls ``scheduler.step()``.
"""

from __future__ import annotations

import math

import jax
import numpy as np


def _real(x):
    """float64 (or a float64 pair per complex number, on a trailing axis)."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return np.stack([x.real, x.imag], axis=-1).astype(np.float64)
    return x.astype(np.float64)


def _back(x, like):
    like = np.asarray(like)
    if np.iscomplexobj(like):
        x = x[..., 0] + 1j * x[..., 1]
    return np.asarray(x).astype(like.dtype)


class _Optimizer:
    """Shared plumbing: the state is one dict per parameter leaf, as torch's ``state[p]``."""

    lr: float

    def init(self, params):
        return [{} for _ in jax.tree.leaves(params)]

    def update(self, grads, state, params=None):
        grad_leaves, treedef = jax.tree.flatten(grads)
        param_leaves = jax.tree.leaves(params)
        steps = [_back(self.step_leaf(_real(g), _real(p), s), g) for g, p, s in zip(grad_leaves, param_leaves, state)]
        return jax.tree.unflatten(treedef, steps), state

    def step_leaf(self, g, theta, s):
        raise NotImplementedError


class TorchSGD(_Optimizer):
    """SGD: g += wd * theta; b_1 = g, b_t = mu b + (1 - tau) g; g = g + mu b (nesterov) or b;
    theta -= lr g. The gradient is negated first with maximize."""

    def __init__(self, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov, self.maximize = weight_decay, nesterov, maximize

    def step_leaf(self, g, theta, s):
        if self.maximize:
            g = -g
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        if self.momentum != 0:
            if "b" not in s:
                s["b"] = g.copy()
            else:
                s["b"] = self.momentum * s["b"] + (1 - self.dampening) * g
            g = g + self.momentum * s["b"] if self.nesterov else s["b"]
        return -self.lr * g


class TorchAdam(_Optimizer):
    """Adam (AdamW with decoupled_weight_decay=True): theta -= lr wd theta (decoupled) or g += wd theta;
    m, v moving averages; m_hat = m / (1 - b1^t); v_hat = (max v or v) / (1 - b2^t);
    theta -= lr m_hat / (sqrt(v_hat) + eps)."""

    def __init__(
        self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *, maximize=False,
        decoupled_weight_decay=False,
    ):  # fmt: skip
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.weight_decay, self.amsgrad, self.maximize = weight_decay, amsgrad, maximize
        self.decoupled = decoupled_weight_decay

    def step_leaf(self, g, theta, s):
        if not s:
            s.update(t=0, m=np.zeros_like(g), v=np.zeros_like(g), v_max=np.zeros_like(g))
        s["t"] += 1
        t, b1, b2 = s["t"], self.beta1, self.beta2
        if self.maximize:
            g = -g
        decay_step = np.zeros_like(theta)
        if self.weight_decay != 0:
            if self.decoupled:
                decay_step = -self.lr * self.weight_decay * theta
            else:
                g = g + self.weight_decay * theta
        s["m"] = b1 * s["m"] + (1 - b1) * g
        s["v"] = b2 * s["v"] + (1 - b2) * g**2
        m_hat = s["m"] / (1 - b1**t)
        if self.amsgrad:
            s["v_max"] = np.maximum(s["v_max"], s["v"])
            v_hat = s["v_max"] / (1 - b2**t)
        else:
            v_hat = s["v"] / (1 - b2**t)
        return decay_step - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def TorchAdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *, maximize=False):
    return TorchAdam(lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True)


class TorchRMSprop(_Optimizer):
    """RMSprop: g += wd theta; v = alpha v + (1 - alpha) g^2; v~ = v - g_ave^2 (centered) or v;
    b = mu b + g / (sqrt(v~) + eps) and theta -= lr b when mu > 0, else theta -= lr g / (sqrt(v~) + eps)."""

    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *, maximize=False):
        self.lr, self.alpha, self.eps, self.weight_decay = lr, alpha, eps, weight_decay
        self.momentum, self.centered, self.maximize = momentum, centered, maximize

    def step_leaf(self, g, theta, s):
        if not s:
            s.update(v=np.zeros_like(g), g_ave=np.zeros_like(g), b=np.zeros_like(g))
        alpha = self.alpha
        if self.maximize:
            g = -g
        if self.weight_decay != 0:
            g = g + self.weight_decay * theta
        s["v"] = alpha * s["v"] + (1 - alpha) * g**2
        v_tilde = s["v"]
        if self.centered:
            s["g_ave"] = s["g_ave"] * alpha + (1 - alpha) * g
            v_tilde = v_tilde - s["g_ave"] ** 2
        if self.momentum > 0:
            s["b"] = self.momentum * s["b"] + g / (np.sqrt(v_tilde) + self.eps)
            return -self.lr * s["b"]
        return -self.lr * g / (np.sqrt(v_tilde) + self.eps)


class _Scheduler:
    """torch's LRScheduler: remembers the initial rate, and its constructor takes one initial
    step (``last_epoch`` goes from -1 to 0)."""

    def __init__(self, optimizer):
        self.optimizer, self.base_lr, self.last_epoch = optimizer, optimizer.lr, -1
        self.step()

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.next_lr()

    def next_lr(self):
        raise NotImplementedError


class StepLR(_Scheduler):
    """lr *= gamma when last_epoch is a non-zero multiple of step_size."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer)

    def next_lr(self):
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self.optimizer.lr
        return self.optimizer.lr * self.gamma


class MultiStepLR(_Scheduler):
    """lr *= gamma ** (times last_epoch appears in milestones)."""

    def __init__(self, optimizer, milestones, gamma=0.1):
        self.milestones, self.gamma = list(milestones), gamma
        super().__init__(optimizer)

    def next_lr(self):
        return self.optimizer.lr * self.gamma ** self.milestones.count(self.last_epoch)


class ExponentialLR(_Scheduler):
    """lr *= gamma at every step after the initial one."""

    def __init__(self, optimizer, gamma):
        self.gamma = gamma
        super().__init__(optimizer)

    def next_lr(self):
        return self.optimizer.lr if self.last_epoch == 0 else self.optimizer.lr * self.gamma


class LambdaLR(_Scheduler):
    """lr = initial_lr * lr_lambda(last_epoch)."""

    def __init__(self, optimizer, lr_lambda):
        self.lr_lambda = lr_lambda
        super().__init__(optimizer)

    def next_lr(self):
        return self.base_lr * float(self.lr_lambda(self.last_epoch))


class EpochLoop:
    """A torch training loop as a transformation: ``optimizer.step()`` on every update, and
    ``scheduler.step()`` after every ``steps_per_epoch`` of them (at each epoch's end)."""

    def __init__(self, optimizer, make_scheduler, steps_per_epoch=1):
        self.optimizer, self.steps_per_epoch = optimizer, steps_per_epoch
        self.scheduler = make_scheduler(optimizer)
        self.steps = 0

    def init(self, params):
        return self.optimizer.init(params)

    def update(self, grads, state, params=None):
        updates, state = self.optimizer.update(grads, state, params)
        self.steps += 1
        if self.steps % self.steps_per_epoch == 0:
            self.scheduler.step()
        return updates, state


class ReduceLROnPlateau:
    """torch's rule: a metric better than best by the threshold resets the count of bad epochs;
    after more than ``patience`` of them, lr = max(lr * factor, min_lr) unless that changes it
    by eps or less; then ``cooldown`` epochs count no bad epoch. ``step(metric)`` returns the
    rate after it."""

    def __init__(
        self, lr, mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
        min_lr=0.0, eps=1e-8,
    ):  # fmt: skip
        self.lr, self.mode, self.factor, self.patience = lr, mode, factor, patience
        self.threshold, self.threshold_mode, self.cooldown = threshold, threshold_mode, cooldown
        self.min_lr, self.eps = min_lr, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.bad, self.cooldown_left = 0, 0

    def better(self, metric):
        if self.mode == "min":
            if self.threshold_mode == "rel":
                return metric < self.best * (1.0 - self.threshold)
            return metric < self.best - self.threshold
        if self.threshold_mode == "rel":
            return metric > self.best * (1.0 + self.threshold)
        return metric > self.best + self.threshold

    def step(self, metric):
        if self.better(metric):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad = 0
        if self.bad > self.patience:
            reduced = max(self.lr * self.factor, self.min_lr)
            if self.lr - reduced > self.eps:
                self.lr = reduced
            self.cooldown_left, self.bad = self.cooldown, 0
        return self.lr
