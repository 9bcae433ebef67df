"""Exceptions raised by interp. Bad *values* raise ValueError with the argument named."""


class ModelUnavailableError(RuntimeError):
    """A model exists but cannot be loaded here (no hub access, package not installed)."""


class UndefinedMetricError(ValueError):
    """A metric is undefined for these inputs (e.g. recovery when clean == corrupted)."""


class CellsFailedError(RuntimeError):
    """Grid cells raised (after their retries); the run's report and run.json list them and the
    other cells' results are written. The message carries every failed cell's error."""
