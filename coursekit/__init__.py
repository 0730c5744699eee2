"""The course's floor: what every chapter uses and no chapter teaches.

Errors and the command-line error path, the number-format policy and other
hardware facts, and progress that reads well in a terminal and in a log.
Nothing here imports a chapter.
"""

from .errors import CourseError, check_positive, run_cli

__all__ = ["CourseError", "check_positive", "run_cli"]
