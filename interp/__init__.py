"""interp: mechanistic interpretability and steering-reliability research on HookedTransformers.

>>> import interp
>>> model = interp.load_model("smollm2-135m-instruct")
>>> batch = interp.tokenize(model, ["The capital of France is"])
"""

from interp.cache import cache_dir
from interp.data import TokenBatch, run_batch, single_token_id, single_token_ids, tokenize
from interp.errors import ModelUnavailableError, UndefinedMetricError
from interp.hooks import (
    act_name,
    active_hook_count,
    add_vector,
    add_vectors,
    capture,
    check_layer,
    hook_name,
    mean_ablate,
    mean_activation,
    replace_activation,
    run_with_cache,
    zero_ablate,
)
from interp.models import list_models, load_model
from interp.patching import last_logits, str_tokens

__version__ = "0.1.0"

# submodules reachable as attributes without an explicit import (interp.plots.heatmap, interp.lens.logit_lens);
# imported on first use so `import interp` stays light
_SUBMODULES = {
    "attribution",
    "circuits",
    "data",
    "dola",
    "engine",
    "function_vectors",
    "heads",
    "hooks",
    "lens",
    "mediation",
    "models",
    "patching",
    "plots",
    "sae",
    "selection",
    "stats",
    "steering",
    "study",
    "transfer",
}


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"interp.{name}")
    raise AttributeError(f"module 'interp' has no attribute {name!r}")


__all__ = [
    "ModelUnavailableError",
    "TokenBatch",
    "UndefinedMetricError",
    "act_name",
    "active_hook_count",
    "add_vector",
    "add_vectors",
    "cache_dir",
    "capture",
    "check_layer",
    "hook_name",
    "last_logits",
    "list_models",
    "load_model",
    "mean_ablate",
    "mean_activation",
    "replace_activation",
    "run_with_cache",
    "run_batch",
    "single_token_id",
    "single_token_ids",
    "str_tokens",
    "tokenize",
    "zero_ablate",
]
