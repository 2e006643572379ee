"""Layer 4: PyTorch's optimizers and schedulers, faithful to ``torch.optim`` (2.13) number for number.

Each constructor takes torch's arguments, in torch's order, with torch's defaults, less the
``params`` that torch optimizers own, and returns an ordinary gradient transformation of this
library: optax-compatible, inspectable, usable with :func:`~jaxopt_notes.inject_hyperparams`
and :func:`~jaxopt_notes.fit`. torch itself is never imported; the porting guide
(``docs/guides/porting_pytorch.md``) tables the conventions that make naive ports differ.
"""

from jaxopt_notes.torch._adam import Adam, AdamW
from jaxopt_notes.torch._plateau import ReduceLROnPlateau
from jaxopt_notes.torch._rmsprop import RMSprop
from jaxopt_notes.torch._schedulers import ExponentialLR, LambdaLR, MultiStepLR, StepLR
from jaxopt_notes.torch._sgd import SGD
from jaxopt_notes.torch._transforms import TorchAdamState, TorchMomentumState, TorchRMSpropState

# Grouped as torch.optim groups them; sorted within each group.
__all__ = [
    # Optimizers (torch.optim)
    "Adam",
    "AdamW",
    "RMSprop",
    "SGD",
    # Their states, with torch's names for what they hold
    "TorchAdamState",
    "TorchMomentumState",
    "TorchRMSpropState",
    # Schedulers (torch.optim.lr_scheduler): schedules step -> rate, and a fit callback
    "ExponentialLR",
    "LambdaLR",
    "MultiStepLR",
    "ReduceLROnPlateau",
    "StepLR",
]
