"""Instructor solutions to Chapter 4's exercises (kept apart from the students' stubs)."""
