"""Instructor solutions to the Chapter 5 exercises (kept apart from the students' stubs)."""
