"""The DoLa study (seed 001 §3: TruthfulQA MC, FACTOR, lens and apathy): see :mod:`.study` and :mod:`.core`."""

from interp.studies.dola.core import *  # noqa: F403 - the study's library calls
from interp.studies.dola.study import STUDY, DolaConfig

__all__ = ["STUDY", "DolaConfig"]
