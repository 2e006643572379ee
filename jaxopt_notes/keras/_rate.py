"""The learning rate of a Keras optimizer: a number, a callable of the step, or a schedule.

Keras evaluates the rate at ``optimizer.iterations``, the updates taken before this one (0 on
the first update), and casts it to each variable's dtype. Every stage of a Keras optimizer that
needs the rate (the step itself, the weight decay) evaluates it with the core's ``rate_at`` at
its own count, which moves in lockstep with the others, and the core's ``record_learning_rate``
keeps the value in the rate states so that :func:`~jaxopt_notes.learning_rate_in_use` and
``fit``'s history report it.
"""

from __future__ import annotations

from jaxopt_notes._base import Schedule

LearningRate = float | Schedule
"""A number >= 0, or a callable ``step -> rate`` (the schedules of :mod:`jaxopt_notes.keras`)."""
