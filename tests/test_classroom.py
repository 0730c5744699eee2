"""For a class: the student's handout holds no solution code and works on its own; the grader marks a class of
made-up submissions exactly, in bounded time and memory, whatever their code does (coursekit.handout,
coursekit.grading, `python -m course handout|grade`).

The made-up students are built from the solutions, so the handout leaves this file out (INSTRUCTOR_TESTS)."""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coursekit.grading import find_chapters
from coursekit.handout import INSTRUCTOR_TESTS, course_root
from coursekit.student_process import PIDS_CGROUP, process_limit

ROOT = course_root()
# Where nothing caps a student's processes (a root grader without a writable pids cgroup), a fork bomb would take
# the machine down: that student is left out of the class there, and the test that checks the cap is skipped.
FORK_BOMB_SAFE = process_limit() is not None
SOLUTION_FILES = sorted(ROOT.glob("ch0*/solutions/exercises.py"))
# Solution functions whose body the handout holds on purpose: the stubs give the student these two __init__
# methods ("written for you"), and Chapter 1's lesson code (bigram.py, which the exercises ask students not to
# peek at) has the same one-line vocab_size and decode. Any other body found in the handout is a leak.
GIVEN = {"ch01_bigram.BigramLanguageModel.__init__", "ch02_attention.Head.__init__",
         "ch01_bigram.CharTokenizer.vocab_size", "ch01_bigram.CharTokenizer.decode"}
# Runs a module of the handout as a student who installed only the handout would: the instructor's editable
# install (which can reach the solutions) is hidden first, as the grader's child hides it.
AS_STUDENT = ("import runpy, sys; from coursekit.grading_child import hide_installed_course; "
              "hide_installed_course(); sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__')")


def _in_handout(handout: Path, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(handout), "XDG_CACHE_HOME": str(handout / ".cache")}
    return subprocess.run([sys.executable, "-c", AS_STUDENT, *command], cwd=handout, env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def handout(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("handout") / "course"
    made = subprocess.run([sys.executable, "-m", "course", "handout", str(dest)], capture_output=True, text=True,
                          timeout=300, check=False, cwd=ROOT)
    assert made.returncode == 0, made.stderr
    return dest


# --------------------------------------------------------------------------- the handout

def _functions(source: str, prefix: str = ""):
    """(qualified name, node) of every function and method in `source`."""
    def walk(node, names):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield ".".join([*names, child.name]), child
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, [*names, child.name])
    yield from walk(ast.parse(source), [prefix] if prefix else [])


def _function_bodies(source: str, prefix: str = ""):
    """(qualified name, body as the syntax tree prints it: comments and layout gone) of every function."""
    for name, node in _functions(source, prefix):
        yield name, ast.unparse(ast.Module(body=node.body, type_ignores=[]))


def _code_pieces(path: Path) -> list[str]:
    """The Python a file holds: itself, a notebook's code cells, a Markdown file's python blocks."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".ipynb":
        return ["".join(cell["source"]) for cell in json.loads(text)["cells"] if cell["cell_type"] == "code"]
    if path.suffix == ".md":
        return re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [text] if path.suffix == ".py" else []


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_the_handout_holds_no_solution_code(handout):
    files = [p for p in handout.rglob("*") if p.is_file()]
    assert not [p for p in files if "solutions" in p.relative_to(handout).parts], "a solutions folder was copied"
    assert not (handout / ".git").exists()
    assert not [t for t in INSTRUCTOR_TESTS if (handout / t).exists()]
    assert (handout / "tests" / "test_exercises.py").is_file() and (handout / "ch03_gpt" / "exercises.py").is_file()

    in_handout: dict[str, list[str]] = {}  # function body -> where
    texts = {}
    for path in files:
        if path.suffix in (".py", ".ipynb", ".md", ".txt", ".json", ".toml", ".cfg", ""):
            texts[path] = _squeezed(path.read_text(encoding="utf-8", errors="replace"))
        for piece in _code_pieces(path):
            try:
                for name, body in _function_bodies(piece):
                    in_handout.setdefault(body, []).append(f"{path.relative_to(handout)}:{name}")
            except SyntaxError:
                continue  # a notebook cell with shell magic, a Markdown fragment
    checked = 0
    for solutions in SOLUTION_FILES:
        chapter = solutions.parent.parent.name
        source = solutions.read_text(encoding="utf-8")
        for name, node in _functions(source, chapter):
            checked += 1
            if name in GIVEN:
                continue
            body = ast.unparse(ast.Module(body=node.body, type_ignores=[]))
            assert body not in in_handout, f"the solution {name} is in the handout: {in_handout[body]}"
            # The same as text, in any file: the function's own lines with comments and spaces dropped.
            lines = ast.get_source_segment(source, node).splitlines()[1:]
            text = _squeezed("".join(re.sub(r"#.*", "", line) for line in lines))
            assert not [p for p, t in texts.items() if text in t], f"the solution {name} is in the handout as text"
    assert checked >= 30  # at least one function per exercise was looked for


def test_the_handout_checks_exercises_and_refuses_solutions(handout):
    stubs = _in_handout(handout, "ch02_attention.exercises", "--check")
    assert stubs.returncode == 1, stubs.stderr
    assert stubs.stdout.startswith("FAIL average_past: not implemented yet\n     hint 1 of 3: ")
    assert "0/5 exercises pass" in stubs.stdout
    hint = _in_handout(handout, "ch02_attention.exercises", "--hint", "average_past")
    assert hint.returncode == 0 and hint.stdout.startswith("average_past, hint 2 of 3: "), hint.stderr
    refused = _in_handout(handout, "ch02_attention.exercises", "--solutions")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and "no solutions" in refused.stderr


@pytest.mark.slow
def test_the_handouts_own_tests_pass(handout):
    """The README's test command, on the tests that need no training (the whole suite is the same command)."""
    tests = _in_handout(handout, "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "tests/test_exercises.py",
                        "tests/test_lint.py", "tests/test_cli_numbers.py", timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]


def test_a_handout_never_overwrites(handout, tmp_path):
    (tmp_path / "work.py").write_text("a student's work\n")
    again = subprocess.run([sys.executable, "-m", "course", "handout", str(tmp_path)], capture_output=True,
                           text=True, timeout=300, check=False, cwd=ROOT)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "Traceback" not in again.stderr
    assert (tmp_path / "work.py").read_text() == "a student's work\n" and len(list(tmp_path.iterdir())) == 1


# --------------------------------------------------------------------------- a class of made-up submissions

TIME_LIMIT = 10     # seconds per exercise in this test (the default is 60)
MEMORY_MB = 4096    # the default: torch alone takes about 3.5 GB of address space
CHAPTERS = {c.package: [check.name for check in c.checks] for c in find_chapters(ROOT)}
ONE_RIGHT = {"ch01_bigram": ["CharTokenizer"], "ch02_attention": ["average_past"], "ch03_gpt": ["top_k_filter"],
             "ch04_pretrain": ["weight_decay_groups"], "ch05_finetune": ["format_prompt"]}
ONE_RIGHT_EXERCISE = {"ch01_bigram": "tokenizer", "ch02_attention": "average_past", "ch03_gpt": "top_k",
                      "ch04_pretrain": "weight_decay_groups", "ch05_finetune": "format_prompt"}
STRAY = "317"  # `sleep 317`: a process a student's code leaves behind, which the grader must end


def _solution(chapter: str) -> str:
    return (ROOT / chapter / "solutions" / "exercises.py").read_text(encoding="utf-8")


def _replace_body(source: str, function: str, new_body: str) -> str:
    """`source` with the body of `function` replaced by `new_body` (indented lines)."""
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == function)
    lines = source.splitlines(keepends=True)
    return "".join(lines[:node.body[0].lineno - 1]) + new_body + "".join(lines[node.end_lineno:])


def _one_right(chapter: str) -> str:
    """The chapter's untouched stubs with the solution of one exercise pasted after them (it replaces the stub)."""
    solution = _solution(chapter)
    tree = ast.parse(solution)
    imports = [ast.get_source_segment(solution, n) for n in tree.body
               if isinstance(n, ast.Import) or (isinstance(n, ast.ImportFrom) and n.module != "__future__")]
    wanted = [ast.get_source_segment(solution, n) for n in tree.body
              if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name in ONE_RIGHT[chapter]]
    stubs = (ROOT / chapter / "exercises.py").read_text(encoding="utf-8")
    return "\n".join([stubs, *imports, *wanted]) + "\n"


def _class() -> dict[str, dict[str, str]]:
    """student -> {chapter: their exercises.py}: a class with every kind of trouble the grader must survive."""
    solutions = {c: _solution(c) for c in CHAPTERS}
    stubs = {c: (ROOT / c / "exercises.py").read_text(encoding="utf-8") for c in CHAPTERS}
    return {
        "all_solutions": solutions,
        "untouched_stubs": stubs,
        "one_right_per_chapter": {c: _one_right(c) for c in CHAPTERS},
        "syntax_error": {"ch01_bigram": solutions["ch01_bigram"] + "\ndef unfinished(:\n",
                         "ch02_attention": solutions["ch02_attention"]},
        "infinite_loop": {"ch03_gpt": _replace_body(solutions["ch03_gpt"], "top_p_filter",
                                                    "    while True:\n        pass\n")},
        "memory_hog": {"ch04_pretrain": _replace_body(solutions["ch04_pretrain"], "training_state_bytes",
                                                      "    hog = []\n    while True:\n"
                                                      "        hog.append(bytearray(256 << 20))\n")},
        "prints_100_mb": {"ch05_finetune": _replace_body(solutions["ch05_finetune"], "format_prompt",
                                                         "    for _ in range(100):\n        print('x' * (1 << 20))\n"
                                                         "    return instruction\n")},
        "exits_at_import": {"ch01_bigram": solutions["ch01_bigram"] + "\nimport sys\n\nsys.exit(0)\n"},
        "imports_the_solutions": {"ch02_attention": "from ch02_attention.solutions.exercises import *  # noqa\n"},
        "leaves_a_process": {"ch05_finetune": solutions["ch05_finetune"]
                             + "\nimport subprocess\n\nsubprocess.Popen(['sleep', '" + STRAY + "'])\n"},
        **({"fork_bomb": {"ch05_finetune": _replace_body(solutions["ch05_finetune"], "scores",
                                                         "    import os\n    while True:\n        os.fork()\n")}}
           if FORK_BOMB_SAFE else {}),
    }


def _expected() -> dict[str, dict[str, str]]:
    """student -> {column: grade}: what each deserves."""
    def row(rule):
        return {f"{c.split('_')[0]}.{n}": rule(c, n) for c, names in CHAPTERS.items() for n in names}

    def only(chapters, grade="PASS", exceptions=None):
        exceptions = exceptions or {}
        return row(lambda c, n: exceptions.get((c, n), grade if c in chapters else "FAIL"))

    return {
        "all_solutions": row(lambda c, n: "PASS"),
        "untouched_stubs": row(lambda c, n: "FAIL"),
        "one_right_per_chapter": row(lambda c, n: "PASS" if ONE_RIGHT_EXERCISE[c] == n else "FAIL"),
        "syntax_error": row(lambda c, n: {"ch01_bigram": "ERROR", "ch02_attention": "PASS"}.get(c, "FAIL")),
        "infinite_loop": only({"ch03_gpt"}, exceptions={("ch03_gpt", "top_p"): "TIMEOUT"}),
        "memory_hog": only({"ch04_pretrain"}, exceptions={("ch04_pretrain", "memory_estimate"): "ERROR"}),
        "prints_100_mb": only({"ch05_finetune"}, exceptions={("ch05_finetune", "format_prompt"): "ERROR"}),
        "exits_at_import": only({"ch01_bigram"}, grade="ERROR"),
        "imports_the_solutions": only({"ch02_attention"}, grade="ERROR"),
        "leaves_a_process": only({"ch05_finetune"}),
        **({"fork_bomb": only({"ch05_finetune"}, exceptions={("ch05_finetune", "scores"): "ERROR"})}
           if FORK_BOMB_SAFE else {}),
    }


# Runs the grader in its own process and reports its peak memory and that of the largest student process.
MEASURED = ("import resource, sys, time; import course; from coursekit import run_cli; start = time.perf_counter(); "
            "run_cli(course.main, sys.argv[1:]); "
            "print('measured', time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "
            "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def _stray_processes() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == f"sleep\0{STRAY}\0".encode():
                found.append(entry)
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    for student, files in _class().items():
        for chapter, text in files.items():
            # One student hands in a whole copy's layout, the others only the chapter folders: both are found.
            folder = root / "submissions" / student / ("my-course" if student == "all_solutions" else "") / chapter
            folder.mkdir(parents=True)
            (folder / "exercises.py").write_text(text, encoding="utf-8")
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-c", MEASURED, "grade", str(root / "submissions"), "--out",
                          str(root / "grades.csv"), "--time-limit", str(TIME_LIMIT), "--memory-limit",
                          str(MEMORY_MB), "--hints", "2", "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    wall, parent_kb, child_kb = map(float, run.stdout.strip().splitlines()[-1].split()[1:])
    return root, run.stdout, {"wall": wall, "test_wall": time.monotonic() - start, "parent_mb": parent_kb / 1024,
                              "child_mb": child_kb / 1024}


@pytest.mark.slow
def test_the_class_gets_exactly_the_grades_it_deserves(graded):
    root, report, measured = graded
    with open(root / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row.pop("student"): row for row in csv.DictReader(f)}
    expected = _expected()
    assert sorted(rows) == sorted(expected)
    for student, want in expected.items():
        got = rows[student]
        assert got.pop("total") == str(list(want.values()).count("PASS")), student
        wrong = {k: (got[k], v) for k, v in want.items() if got[k] != v}
        assert not wrong, f"{student}: (got, expected) {wrong}"
    print(report)  # the grader's own summary, and its time and memory, for the record (-s shows them)
    print(measured)


@pytest.mark.slow
def test_the_grader_is_bounded_in_time_and_memory_and_leaves_nothing_running(graded):
    _, _, measured = graded
    # Every exercise but the endless one finishes in seconds; that one costs one time limit. The bound is loose
    # on purpose (a shared 2-core machine): what it rules out is waiting on a loop or a hung process.
    assert measured["wall"] < 30 * TIME_LIMIT, measured
    assert measured["child_mb"] < MEMORY_MB, measured   # the hog was stopped at its limit
    assert measured["parent_mb"] < 1536, measured       # 100 MB of printing never came into the grader
    assert _stray_processes() == []                     # the process a student started was ended with theirs


@pytest.mark.slow
def test_feedback_says_what_went_wrong_with_the_hints_asked_for(graded):
    root, _, _ = graded
    feedback = {p.stem: p.read_text(encoding="utf-8") for p in (root / "feedback").glob("*.txt")}
    assert sorted(feedback) == sorted(_expected())
    assert "Feedback for all_solutions: 30 of 30 exercises pass." in feedback["all_solutions"]
    stubs = feedback["untouched_stubs"]
    assert "FAIL average_past: not implemented yet\n     hint 1 of 3: " in stubs
    assert "     hint 2 of 3: " in stubs and "hint 3 of 3" not in stubs  # --hints 2
    assert "ERROR tokenizer: exercises.py does not compile: SyntaxError at line" in feedback["syntax_error"]
    assert f"TIMEOUT top_p: this exercise ran longer than {TIME_LIMIT} s" in feedback["infinite_loop"]
    assert "ERROR memory_estimate: ran out of memory while being checked" in feedback["memory_hog"]
    assert "ERROR format_prompt: printed more than 1,048,576 bytes" in feedback["prints_100_mb"]
    assert "ERROR tokenizer: called exit() while being imported" in feedback["exits_at_import"]
    assert "No module named 'ch02_attention.solutions'" in feedback["imports_the_solutions"]
    assert "ch02_attention: not submitted" in feedback["infinite_loop"]



@pytest.mark.slow
@pytest.mark.skipif(not FORK_BOMB_SAFE, reason="nothing caps a student's processes here (root, no pids cgroup)")
def test_a_fork_bomb_is_capped_graded_and_cleared(graded):
    root, _, _ = graded
    feedback = (root / "feedback" / "fork_bomb.txt").read_text(encoding="utf-8")
    assert "ERROR scores: started more processes than allowed while being checked" in feedback
    assert "PASS last_token" in feedback  # the exercises before it were graded as usual
    left = sorted(p.name for p in PIDS_CGROUP.glob("gpt-course-grader-*")) if PIDS_CGROUP.is_dir() else []
    assert left == []  # every student's cgroup (where one was used) removed, its processes gone with it


@pytest.mark.slow  # six commands, each importing the course
def test_bad_input_is_one_line_and_exit_2(tmp_path):
    def grade(*argv):
        return subprocess.run([sys.executable, "-m", "course", "grade", *argv], cwd=ROOT, capture_output=True,
                              text=True, timeout=300, check=False)

    for argv, words in ([str(tmp_path / "missing")], "is not a folder of submissions"), \
                       ([str(tmp_path)], "holds no student folders"), \
                       ([str(tmp_path), "--time-limit", "0"], "--time-limit"), \
                       ([str(tmp_path), "--hints", "-1"], "--hints"):
        result = grade(*argv)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr
    (tmp_path / "subs" / "alice" / "ch01_bigram").mkdir(parents=True)
    result = grade(str(tmp_path / "subs"), "--out", str(tmp_path / "subs" / "grades.csv"))
    assert result.returncode == 2 and "inside the submissions folder" in result.stderr, result.stderr
    # A memory limit torch cannot start under is the instructor's setting, not the students' fault: the run stops
    # before grading anyone, rather than giving the class ERRORs.
    (tmp_path / "subs" / "alice" / "ch01_bigram" / "exercises.py").write_text("x = 1\n")
    result = grade(str(tmp_path / "subs"), "--out", str(tmp_path / "grades.csv"), "--memory-limit", "1024")
    assert result.returncode == 2 and "is --memory-limit too low" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "grades.csv").exists()
