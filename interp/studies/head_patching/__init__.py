"""The head-patching study (IOI): see :mod:`.study` (cells, analysis, report) and :mod:`.core`."""

from interp.studies.head_patching.core import *  # noqa: F403 - the study's library calls
from interp.studies.head_patching.study import STUDY, HeadPatchingConfig, HeadPatchingResult

__all__ = ["STUDY", "HeadPatchingConfig", "HeadPatchingResult"]
