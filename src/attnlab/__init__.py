"""attnlab: build, train, compare and look inside attention mechanisms and memory networks."""

from attnlab.core import AttendOutput, Trace, attend, capture

__version__ = "0.1.0"

__all__ = ["AttendOutput", "Trace", "__version__", "attend", "capture"]
