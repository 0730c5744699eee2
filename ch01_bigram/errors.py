"""The course's error type lives in the floor package, `coursekit.errors`; this name is kept for old imports."""

from coursekit.errors import CourseError, check_positive, run_cli  # noqa: F401
