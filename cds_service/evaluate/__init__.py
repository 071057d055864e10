"""Policy evaluation: criteria tree x facts -> a trace of met / not-met / unknown and a decision."""
from .outcome import Decision, Evaluation, evaluate_order
from .status import Status

__all__ = ["Decision", "Evaluation", "Status", "evaluate_order"]
