"""The demo study (factual recall: clean-run check, logit lens, head patching); see :mod:`.study`."""

from interp.studies.demo.study import STUDY, DemoCell, DemoConfig, TaskConfig, demo_cell

__all__ = ["STUDY", "DemoCell", "DemoConfig", "TaskConfig", "demo_cell"]
