"""The toy "steering clear" study (seed 002 §3.1): see :mod:`.study` and :mod:`.core`."""

from interp.studies.toy_steering.core import *  # noqa: F403 - the study's library calls
from interp.studies.toy_steering.study import STUDY, ToyConfig

__all__ = ["STUDY", "ToyConfig"]
