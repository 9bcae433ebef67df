"""The function-vector study (seed 001 §4): see :mod:`.study` (cells, report) and :mod:`.core`."""

from interp.studies.function_vectors.core import *  # noqa: F403 - the study's library calls
from interp.studies.function_vectors.study import STUDY, FVConfig

__all__ = ["STUDY", "FVConfig"]
