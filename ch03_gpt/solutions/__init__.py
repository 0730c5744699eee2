"""Instructor solutions to the chapters' exercises (kept apart from the students' stubs)."""
