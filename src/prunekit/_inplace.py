"""The in-place rule of the weight-level entry points (README, "In place or a copy?").

Entry points that return a model never modify their input. The weight-level ones that work on large
models (:func:`prunekit.nn.prune_model`, :func:`prunekit.nn.oneshot.oneshot`,
:func:`prunekit.nn.lottery_ticket`) prune in place by default, because a copy doubles the memory,
and take ``inplace=False`` to prune a deep copy instead; the pruned model is ``report.model``
(``result.model`` for the lottery ticket) either way.
"""

from __future__ import annotations

import copy
from typing import Any

from prunekit._validation import check_bool


def working_model(model: Any, inplace: Any) -> Any:
    """``model`` itself when ``inplace`` is true, else a deep copy of it (``inplace`` validated)."""
    return model if check_bool("inplace", inplace) else copy.deepcopy(model)


def working_copies(inplace: Any, *objects: Any) -> tuple[Any, ...]:
    """``objects`` as given when ``inplace`` is true, else deep-copied together, so references
    between them survive (e.g. a list of the model's own submodules still points into the copy)."""
    return objects if check_bool("inplace", inplace) else copy.deepcopy(objects)
