"""Layer 2: minibatches over data sets too big for one step, their shuffles, and prefetching
to the device (notes section 1). Imports only the core."""

from jaxopt_notes.data._batches import (
    BatchSizeSuggestion,
    Minibatches,
    minibatches,
    random_mini_batches,
    steps_per_epoch,
    suggest_batch_size,
)
from jaxopt_notes.data._loaders import batch_chunks
from jaxopt_notes.data._prefetch import Prefetcher, prefetch_to_device

__all__ = [
    "BatchSizeSuggestion",
    "Minibatches",
    "Prefetcher",
    "batch_chunks",
    "minibatches",
    "prefetch_to_device",
    "random_mini_batches",
    "steps_per_epoch",
    "suggest_batch_size",
]
