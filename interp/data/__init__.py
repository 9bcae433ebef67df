"""Prompt building, tokenisation and the datasets shipped with the package."""

from interp.data.datasets_io import (
    CAA_BEHAVIORS,
    FactorItem,
    MCQuestion,
    dataset_path,
    list_fv_tasks,
    load_caa,
    load_factor,
    load_fv_task,
    load_truthfulqa_mc,
)
from interp.data.tokenize import TokenBatch, run_batch, single_token_id, single_token_ids, tokenize

__all__ = [
    "CAA_BEHAVIORS",
    "FactorItem",
    "MCQuestion",
    "TokenBatch",
    "dataset_path",
    "list_fv_tasks",
    "load_caa",
    "load_factor",
    "load_fv_task",
    "load_truthfulqa_mc",
    "run_batch",
    "single_token_id",
    "single_token_ids",
    "tokenize",
]
