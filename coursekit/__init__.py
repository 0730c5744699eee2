"""The course's floor: what every chapter uses and no chapter teaches.

- `errors`: the one error type for bad input, the command-line path that turns it into exit status 2, and
  `CourseParser`, the argument parser whose errors read the same, and `subcommand`, one command of a parser;
- `numbers`: the argparse types of every numeric option, each with its range (`positive_int`, `probability`...);
- `files`: files that are whole or absent (atomic writes), JSON through them, and output paths checked first;
- `readers`: UTF-8 text, JSON Lines and Parquet, with errors that name the line;
- `runtime`: seeding and device choice;
- `hardware`: the one number-format policy and the measured matrix-product peak;
- `progress`: progress bars that read well in a terminal, a notebook and a log;
- `exercise_kit`: the checker behind every chapter's exercises, with their hints in steps;
- `handout`, `grading` (with `student_process` and `grading_child`, where a student's code runs) and
  `classroom` (their commands): a student's copy without the solutions, and the marking of a class.

Nothing here imports a chapter by name (the grader finds them by their exercise files). This file
imports only what needs no torch, so that light tools (Chapter 4's tokenizing workers) stay light:
`runtime` and `hardware` are imported by name, `from coursekit.runtime import set_seed`.
"""

from .errors import CourseError, CourseParser, check_positive, command_line, run_cli, subcommand
from .files import atomic_path, read_json, write_json

# The name that picks the course's own generated data wherever a command takes a corpus or data set.
BUILTIN = "builtin"

__all__ = ["BUILTIN", "CourseError", "CourseParser", "atomic_path", "check_positive", "command_line", "read_json",
           "run_cli", "subcommand", "write_json"]
