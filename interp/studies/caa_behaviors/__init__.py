"""The CAA behaviour study (seed 003): see :mod:`.study` (cells, report) and :mod:`.core`."""

from interp.studies.caa_behaviors.core import *  # noqa: F403 - the study's library calls
from interp.studies.caa_behaviors.study import STUDY, CAAConfig

__all__ = ["STUDY", "CAAConfig"]
