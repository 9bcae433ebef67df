"""The IOI circuit study (edge attribution and faithfulness): see :mod:`.study` and :mod:`.core`."""

from interp.studies.ioi_circuit.core import *  # noqa: F403 - the study's library calls
from interp.studies.ioi_circuit.study import STUDY, CircuitConfig

__all__ = ["STUDY", "CircuitConfig"]
