"""Layer 4: Keras 3's optimizers and schedules as gradient transformations that give Keras'
numbers: ``jn.keras.Adam(...)`` takes ``keras.optimizers.Adam(...)``'s arguments, in its order,
with its defaults, and steps the way Keras steps on the same gradients (float64 to about 1e-15
relative, float32 to the rounding of a few operations; see the porting guide for the measured
differences). Each is an ordinary transformation of this library: optax-compatible, usable in
:func:`~jaxopt_notes.fit`, :func:`~jaxopt_notes.inject_hyperparams`-able, with a state of named
fields. Importing this package does not import Keras.

Options every Keras optimizer takes, with Keras' defaults and order, applied each step in
Keras' order (clip, decay, step, average):

- ``weight_decay``: ``None`` or a finite number; each step first shrinks the weights,
  ``W = W - W * weight_decay * lr``, at the step's rate (decoupled from the gradient). ``update``
  then needs params.
- ``clipnorm``, ``clipvalue``, ``global_clipnorm``: ``None`` or a number > 0, one at most
  (Keras refuses two); clip each leaf's gradient to that norm, each element to ``[-c, c]``,
  or all gradients together to that global norm, before anything else.
- ``use_ema``, ``ema_momentum`` (0.99, in [0, 1]), ``ema_overwrite_frequency`` (``None`` or an
  integer >= 1): keep ``average = m * average + (1 - m) * W`` of the weights after each step
  (the first step sets it to the weights), in the state; :func:`ema_params` reads it, as
  Keras' ``model.fit`` writes it into the model at the end. With a frequency ``k`` the
  weights are moved onto the average after every k-th step. ``update`` then needs params.
  Under ``inject_hyperparams``, name ``ema_overwrite_frequency`` in ``static_args``.
- ``loss_scale_factor``, ``gradient_accumulation_steps``: refused with an error naming the way
  to get the same effect (the loss is scaled before a gradient transformation sees anything;
  ``optax.MultiSteps`` accumulates around any transformation).
- ``name``: accepted, changes nothing.

Keras' learning rate is a number, a :class:`ExponentialDecay`, :class:`InverseTimeDecay` or
:class:`PiecewiseConstantDecay` (or any callable of the step, where Keras' callables take no
argument), evaluated at Keras' step numbering: 0 on the first update. Arguments Keras refuses
are refused here with messages naming the argument and the allowed range, and so are a few it
accepts silently although they are mistakes (a negative rate, a beta of 1, ``nesterov``
without momentum, an overwrite frequency without ``use_ema``).
"""

from jaxopt_notes.keras._adam import Adam, AdamState, AdamW
from jaxopt_notes.keras._ema import EmaWeightsState, ema_params
from jaxopt_notes.keras._rmsprop import RMSprop, RMSpropState
from jaxopt_notes.keras._schedules import ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay
from jaxopt_notes.keras._sgd import SGD, SGDState
from jaxopt_notes.keras._weight_decay import WeightDecayState

__all__ = [
    # keras.optimizers
    "Adam",
    "AdamW",
    "RMSprop",
    "SGD",
    # keras.optimizers.schedules
    "ExponentialDecay",
    "InverseTimeDecay",
    "PiecewiseConstantDecay",
    # The averaged weights of use_ema=True
    "ema_params",
    # States, named as Keras names its optimizer variables
    "AdamState",
    "EmaWeightsState",
    "RMSpropState",
    "SGDState",
    "WeightDecayState",
]
