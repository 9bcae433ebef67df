"""The prompt-pairs steering study (seed 002 §3.2): see :mod:`.study` (cells, report) and :mod:`.core`."""

from interp.studies.prompt_pairs.core import *  # noqa: F403 - the study's library calls
from interp.studies.prompt_pairs.study import STUDY, PromptPairsConfig, pooled_shift

__all__ = ["STUDY", "PromptPairsConfig", "pooled_shift"]
