"""The correctness-direction steering study (seed 004 analogue): see :mod:`.study` and :mod:`.core`."""

from interp.studies.correctness_steering.core import *  # noqa: F403 - the study's library calls
from interp.studies.correctness_steering.study import STUDY, CorrectnessConfig

__all__ = ["STUDY", "CorrectnessConfig"]
