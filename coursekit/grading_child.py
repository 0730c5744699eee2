"""The grader's child: checks one student's exercises inside a scratch copy of the handout, under limits.

`coursekit.grading` starts it as `python -m coursekit.grading_child SPEC RESULTS_FD`,
with the handout (no solutions) first on the path, the student's scratch folder as
its working folder, and its output going to a file there. This process is the only
place the student's code runs. It

1. sets its own limits before it imports anything the student wrote: address space
   (memory), the size of any file it writes (so printing is capped on disk, never
   held in memory), no core dumps, and where the system enforces it for this user
   (not for root), a cap on processes;
2. hides the instructor's installed copy of the course, so that an import of
   `chNN.solutions` finds nothing;
3. imports the checks (trusted) and says `ready`; then for each exercise says
   `start`, runs its check and says `result` with PASS, FAIL or ERROR and one line.

Messages are JSON lines on the pipe RESULTS_FD. The parent keeps the clock: it
kills this process group when an exercise runs past its time, and starts a new
child for the exercises left. A grade here is for what the code did; a crash of
the whole process is graded by the parent from its exit status.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import io
import json
import os
import resource
import sys

PROBLEM_CHARS = 500  # a problem is one line; a student's exception message can be any size


def set_limits(memory_bytes: int, output_bytes: int, processes: int | None) -> None:
    """Limits that the kernel enforces on this process and all it starts."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # Python ignores SIGXFSZ, so a write past this size fails with EFBIG instead of killing us.
    resource.setrlimit(resource.RLIMIT_FSIZE, (output_bytes, output_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if processes is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))


def hide_installed_course() -> None:
    """Drop the editable install's finders: they would find the instructor's tree, solutions included."""
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path[:] = [p for p in sys.path if "__editable__" not in p]
    importlib.invalidate_caches()


class Reporter:
    """One JSON line per event on the results pipe, written whole (the parent reads lines)."""

    def __init__(self, fd: int):
        self.fd, self.pid = fd, os.getpid()

    def send(self, **event) -> None:
        if os.getpid() != self.pid:  # a copy of this process that the student's code forked: it ends here,
            os._exit(0)              # without speaking for the grader
        data = (json.dumps(event) + "\n").encode()
        while data:
            data = data[os.write(self.fd, data):]


def fresh_output() -> None:
    """Empty the output file and give Python new streams on it: each exercise gets the whole output limit.

    A stream whose write failed at the limit keeps the failed bytes buffered and fails again on every
    later write; new stream objects start clean.
    """
    os.ftruncate(1, 0)  # the parent opened it for appending, so writes go to the new end
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace",
                                  line_buffering=True)


def grade_error(error: BaseException, limits: dict, when: str) -> tuple[str, str]:
    """(grade, one line) for what a student's code raised `when` ('while being imported', ...)."""
    from coursekit.exercise_kit import describe_error

    if isinstance(error, MemoryError) or (isinstance(error, RuntimeError) and "alloc" in str(error).lower()):
        return "ERROR", f"ran out of memory {when} (the limit is {limits['memory_mb']:,} MB of address space)"
    if isinstance(error, OSError) and error.errno == errno.EFBIG:
        return "ERROR", f"printed more than {limits['output_bytes']:,} bytes {when} (the output limit)"
    if isinstance(error, BlockingIOError):  # EAGAIN: fork or a new thread refused at the process limit
        return "ERROR", f"started more processes than allowed {when}"
    if isinstance(error, SystemExit):
        return "ERROR", f"called exit() {when}"
    if isinstance(error, SyntaxError) and when == "while being imported":
        return "ERROR", f"exercises.py does not compile: {type(error).__name__} at line {error.lineno}: {error.msg}"
    if not isinstance(error, Exception):  # KeyboardInterrupt, GeneratorExit...
        return "ERROR", f"{type(error).__name__} {when}"
    if when == "while being imported":
        return "ERROR", f"exercises.py could not be imported: {describe_error(error)}"
    return "FAIL", describe_error(error)  # a wrong answer or a bug in the answer: the kit's own verdict


def load_student_module(chapter: str, path: str):
    """The student's file, imported as `chapter.exercises` (what the chapter's code and checks expect)."""
    name = f"{chapter}.exercises"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(spec_path: str, results_fd: int) -> None:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    limits = spec["limits"]
    set_limits(limits["memory_mb"] << 20, limits["output_bytes"], spec.get("processes"))
    hide_installed_course()
    report = Reporter(results_fd)
    checks = {chapter: {c.name: c for c in importlib.import_module(f"{chapter}.exercise_checks").CHECKS}
              for chapter in dict.fromkeys(chapter for chapter, _ in spec["items"])}
    report.send(event="ready")

    modules: dict[str, object] = {}
    for chapter, name in spec["items"]:
        if chapter not in modules:
            fresh_output()
            report.send(event="start", chapter=chapter, name=None)
            try:
                modules[chapter] = load_student_module(chapter, spec["files"][chapter])
            except BaseException as error:  # the student's module-level code may raise anything, exit() too
                grade, problem = grade_error(error, limits, "while being imported")
                modules[chapter] = None
                report.send(event="result", chapter=chapter, name=None, grade=grade, problem=problem[:PROBLEM_CHARS])
        if modules[chapter] is None:
            continue  # the parent has graded every exercise of this chapter from the failed import
        fresh_output()
        report.send(event="start", chapter=chapter, name=name)
        try:
            checks[chapter][name].run(modules[chapter])
            grade, problem = "PASS", ""
        except BaseException as error:
            grade, problem = grade_error(error, limits, "while being checked")
        report.send(event="result", chapter=chapter, name=name, grade=grade, problem=problem[:PROBLEM_CHARS])
    report.send(event="done")
    # Leave at once: a student's leftover thread or exit handler must not keep the process (or its grade) hanging.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
