"""The cross-template function-vector transfer study (seed 000): see :mod:`.study` and :mod:`.core`."""

from interp.studies.fv_transfer.core import *  # noqa: F403 - the study's library calls
from interp.studies.fv_transfer.study import STUDY, TransferConfig

__all__ = ["STUDY", "TransferConfig"]
