"""The playground's server, through its HTTP API: the models it finds, the streamed replies and what each
model considered at each step, chat framing, the classifier, and every limit and bad request.

Most tests talk to the app through FastAPI's TestClient; those about concurrent generations and disconnects
run it on a real socket (`serve`), since only there does a client really go away. The checkpoints are
trained in seconds by the `playground_runs` fixture (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from playground.checkpoints import BigramForSampling, find_checkpoints, load
from playground.server import create_app
from playground.settings import Limits

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Once there was a girl named Nora. "  # every character is in the built-in stories' vocabulary


def ids_of(models, kind: str) -> str:
    return next(i for i, m in models.items() if m.kind == kind)


@pytest.fixture(scope="module")
def client(playground_models):
    with TestClient(create_app(playground_models, Limits(), hosts=("testserver",))) as c:
        yield c


def events(response) -> list[dict]:
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def ask(client, models: list[str], prompt: str = PROMPT, **settings) -> list[dict]:
    body = {"prompt": prompt, "columns": [{"model": m} for m in models], **settings}
    return events(client.post("/api/generate", json=body))


def tokens(evs: list[dict], column: int = 0) -> list[dict]:
    return [e for e in evs if e["type"] == "token" and e["column"] == column]


def assert_one_line_error(response, status: int | tuple[int, ...]) -> str:
    """A refusal: the status expected, a JSON body with one key, `error`, one short line, no traceback."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str), body
    assert "\n" not in body["error"] and 0 < len(body["error"]) <= 300, body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


# --------------------------------------------------------------------------- finding and loading


def test_it_finds_a_checkpoint_of_every_kind_the_course_trains(playground_runs, playground_models):
    found = {m.kind: m.found for m in playground_models.values()}
    assert set(found) == {"bigram", "char-gpt", "gpt", "instruct", "classifier"}
    assert [m.found.chapter for m in playground_models.values()] == sorted(m.found.chapter
                                                                          for m in playground_models.values())
    assert found["gpt"].path == playground_runs / "course" / "pretrain"  # the run folder, not its step_ folders
    assert found["classifier"].path == playground_runs / "ch05" / "classify"
    assert found["char-gpt"].shown == "runs/course/gpt"  # named from the folder searched, not the whole path
    assert all(len(i) <= 40 and i.replace("-", "").isalnum() for i in playground_models)


def test_a_bigram_from_before_config_json_takes_its_vocabulary_from_the_main_jobs_corpus(playground_runs, tmp_path):
    old = tmp_path / "course"
    shutil.copytree(playground_runs / "course" / "corpus", old / "corpus")
    (old / "bigram").mkdir()
    shutil.copy(playground_runs / "course" / "bigram" / "model.safetensors", old / "bigram")
    (found,) = find_checkpoints([tmp_path])
    assert found.kind == "bigram"
    new = load(find_checkpoints([playground_runs / "course" / "bigram"])[0])
    assert load(found).encode(PROMPT) == new.encode(PROMPT)


def test_damaged_folders_are_skipped_with_a_note_and_a_named_one_is_an_error(playground_runs, tmp_path):
    from coursekit import CourseError

    shutil.copytree(playground_runs / "course" / "gpt", tmp_path / "runs" / "good")
    bad = tmp_path / "runs" / "bad"
    shutil.copytree(playground_runs / "course" / "gpt", bad)
    (bad / "config.json").write_text("{not json")
    notes = []
    found = find_checkpoints([tmp_path / "runs"], warn=notes.append)
    assert [f.path.name for f in found] == ["good"] and len(notes) == 1 and "bad" in notes[0]
    with pytest.raises(CourseError, match="not a checkpoint of this course"):
        find_checkpoints([], [tmp_path])
    (bad / "config.json").write_text(json.dumps({"tokenizer": {"type": "char", "chars": ["b", "a"]},
                                                 "model": {"n_layer": 1}}))
    with pytest.raises(CourseError, match="bad"):
        load(find_checkpoints([], [bad])[0])


def test_the_bigram_in_chapter_3s_loop_samples_exactly_as_chapter_1_does(playground_models):
    from ch01_bigram import sample_tokens
    from ch03_gpt import stream_with_probs

    bigram = playground_models[ids_of(playground_models, "bigram")].model
    assert isinstance(bigram, BigramForSampling)
    prompt = torch.tensor([[3, 7, 1]])
    for temperature in (0.0, 0.7, 1.0):
        expected = sample_tokens(bigram.bigram, prompt, 40, temperature,
                                 generator=torch.Generator().manual_seed(5))[0, 3:].tolist()
        got = [t.item() for t, _ in stream_with_probs(bigram, prompt, 40, temperature, use_cache=False,
                                                      generator=torch.Generator().manual_seed(5))]
        assert got == expected, temperature


# --------------------------------------------------------------------------- the page and the list


def test_the_page_and_its_assets_are_served_by_the_course_itself(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("app.js", "style.css", "icon.svg"):
        assert f"/static/{asset}" in page.text
        assert client.get(f"/static/{asset}").status_code == 200
    for text in (page.text, client.get("/static/app.js").text, client.get("/static/style.css").text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text  # nothing from elsewhere
    assert client.get("/docs").status_code == 404  # FastAPI's docs pages load from a CDN: switched off
    assert_one_line_error(client.get("/static/..%2Fserver.py"), 404)
    assert_one_line_error(client.get("/static/server.py"), 404)


def test_models_are_listed_by_id_with_the_limits(client, playground_models):
    info = client.get("/api/models").json()
    assert [m["id"] for m in info["models"]] == list(playground_models)
    titles = [m["title"] for m in info["models"]]
    assert titles[0] == "Chapter 1 · bigram" and "Chapter 5 · classifier" in titles
    assert {m["kind"]: m["chat"] for m in info["models"]}["instruct"] is True
    assert info["limits"] == {"max_prompt_chars": 2000, "max_new_tokens": 400, "max_generations": 2,
                              "max_columns": 4, "max_history_chars": 8000}
    assert info["defaults"]["max_new_tokens"] <= info["limits"]["max_new_tokens"]


# --------------------------------------------------------------------------- streaming and the top 5


def test_a_reply_streams_token_by_token_with_the_top_5_the_model_considered(client, playground_models):
    model = ids_of(playground_models, "char-gpt")
    evs = ask(client, [model], max_new_tokens=30, temperature=0.8, seed=7)
    assert [e["type"] for e in evs[:2]] == ["start", "column"] and evs[-1] == {"type": "end", "stopped": False}
    context = playground_models[model].context  # the tiny model sees 32 characters: the prompt's end
    assert evs[0]["seed"] == 7 and evs[1]["sees"] == PROMPT[-context:] and context < len(PROMPT)
    assert evs[1]["notes"] == [f"the model sees the last {context} characters of the prompt only"]
    steps = tokens(evs)
    assert [t["step"] for t in steps] == list(range(1, 31))
    assert evs[-2] == {"type": "done", "column": 0, "reason": "token limit reached", "tokens": 30}
    decode = playground_models[model].token_text
    for t in steps:
        top = t["top"]
        chosen = [row for row in top if row["chosen"]]
        assert len(chosen) == 1 and chosen[0]["id"] == t["id"] and t["text"] == decode(t["id"])
        listed = top[:5]
        assert [r["p"] for r in listed] == sorted((r["p"] for r in listed), reverse=True)
        assert [r["rank"] for r in listed] == list(range(1, len(listed) + 1))
        assert all(0 < r["p"] <= 1 for r in top) and sum(r["p"] for r in listed) <= 1 + 1e-5
        assert len(top) == 5 or (len(top) == 6 and top[5]["chosen"] and top[5]["rank"] > 5)


def test_the_top_5_is_the_distribution_after_temperature_and_filtering(client, playground_models):
    model = ids_of(playground_models, "char-gpt")
    one = tokens(ask(client, [model], max_new_tokens=20, temperature=1.5, top_k=1))
    assert all(t["top"] == [{**t["top"][0], "p": 1.0, "chosen": True, "rank": 1}] for t in one)  # top-k 1: certain
    two = tokens(ask(client, [model], max_new_tokens=20, temperature=1.5, top_k=2))
    assert all(len(t["top"]) <= 2 and abs(sum(r["p"] for r in t["top"]) - 1) < 1e-5 for t in two)
    nucleus = tokens(ask(client, [model], max_new_tokens=20, temperature=1.0, top_p=0.5))
    few = [t["top"] for t in nucleus if len(t["top"]) < 5]  # where top-p kept fewer than 5, all of them are listed
    assert few and all(abs(sum(r["p"] for r in top) - 1) < 1e-5 for top in few)
    # The first step sees the same prompt whatever the settings: a lower temperature sharpens it.
    firsts = {temperature: tokens(ask(client, [model], max_new_tokens=1, temperature=temperature))[0]["top"]
              for temperature in (0.5, 1.0, 2.0)}
    assert firsts[0.5][0]["p"] > firsts[1.0][0]["p"] > firsts[2.0][0]["p"]
    assert firsts[0.5][0]["id"] == firsts[1.0][0]["id"] == firsts[2.0][0]["id"]
    # Temperature 0 takes the most likely token, and lists the model's own distribution (temperature 1).
    greedy = tokens(ask(client, [model], max_new_tokens=10, temperature=0))
    assert all(t["top"][0]["chosen"] for t in greedy)
    listed = [[(row["id"], row["p"]) for row in top[:5]] for top in (greedy[0]["top"], firsts[1.0])]
    assert listed[0] == listed[1]


def test_the_same_seed_gives_the_same_reply_and_an_unseeded_one_reports_its_seed(client, playground_models):
    model = ids_of(playground_models, "char-gpt")
    first = ask(client, [model], max_new_tokens=40, temperature=1.0, top_p=0.9, seed=123)
    again = ask(client, [model], max_new_tokens=40, temperature=1.0, top_p=0.9, seed=123)
    other = ask(client, [model], max_new_tokens=40, temperature=1.0, top_p=0.9, seed=124)
    assert tokens(first) == tokens(again) and tokens(first) != tokens(other)
    unseeded = ask(client, [model], max_new_tokens=40, temperature=1.0, top_p=0.9)
    seed = unseeded[0]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    assert tokens(ask(client, [model], max_new_tokens=40, temperature=1.0, top_p=0.9, seed=seed)) == tokens(unseeded)


def test_side_by_side_every_model_answers_the_same_prompt_in_its_own_column(client, playground_models):
    models = [ids_of(playground_models, k) for k in ("bigram", "char-gpt", "gpt", "instruct")]
    evs = ask(client, models, max_new_tokens=12, seed=1)
    assert evs[0]["columns"] == models
    for column in range(4):
        assert tokens(evs, column), column
        assert sum(e["type"] == "done" and e["column"] == column for e in evs) == 1
    bigram_notes = next(e for e in evs if e["type"] == "column" and e["column"] == 0)["notes"]
    assert bigram_notes == ["a bigram sees one character: only the prompt's last one counts"]
    # Each column is what that model alone gives with the seed.
    alone = ask(client, [models[1]], max_new_tokens=12, seed=1)
    assert [t["id"] for t in tokens(evs, 1)] == [t["id"] for t in tokens(alone)]


# --------------------------------------------------------------------------- chat framing and the classifier


def test_an_instruction_tuned_model_gets_its_template_and_the_history_as_chat_keeps_it(client, playground_models):
    from ch05_finetune.chat import chat_prompt

    model = ids_of(playground_models, "instruct")
    loaded = playground_models[model]
    history = [{"user": "Who is the story about?", "reply": "Nora"}]
    body = {"prompt": "Where did they go?", "columns": [{"model": model, "history": history}],
            "max_new_tokens": 8, "temperature": 0}
    evs = events(client.post("/api/generate", json=body))
    sees = next(e for e in evs if e["type"] == "column")["sees"]
    ids, _, _ = chat_prompt(loaded.codec, loaded.template, [("Who is the story about?", "Nora")],
                            "Where did they go?", loaded.context - 8)
    assert sees == loaded.codec.decode(ids)
    assert sees.startswith(loaded.template.format("Who is the story about?") + "Nora")
    assert sees.endswith(loaded.template.format("Where did they go?"))
    done = next(e for e in evs if e["type"] == "done")
    steps = tokens(evs)
    assert done["reply"] == "".join(t["text"] for t in steps).strip()
    assert steps[-1]["end_of_text"] or done["reason"] == "token limit reached"
    # A long conversation: the oldest turns are dropped to fit the window, and the page is told.
    long = [{"user": f"Question number {i}?", "reply": "an answer of some length"} for i in range(30)]
    body["columns"][0]["history"] = long
    column = next(e for e in events(client.post("/api/generate", json=body)) if e["type"] == "column")
    assert any("oldest" in note for note in column["notes"]) and "Question number 29?" in column["sees"]
    assert "Question number 0?" not in column["sees"]


def test_a_classifier_shows_its_label_and_probabilities_instead_of_generating(client, playground_models):
    from ch05_finetune.classify import predict

    model = ids_of(playground_models, "classifier")
    loaded = playground_models[model]
    text = "Noah said the mouse was nice, not dull."
    evs = ask(client, [model], prompt=text)
    (label,) = [e for e in evs if e["type"] == "label"]
    assert not tokens(evs)
    assert sorted(p["label"] for p in label["probs"]) == sorted(loaded.labels)
    assert abs(sum(p["p"] for p in label["probs"]) - 1) < 1e-5
    assert label["label"] == label["probs"][0]["label"]
    expected = predict(loaded.model, [loaded.codec.encode(text)], loaded.codec.eot)[0].item()
    assert label["label"] == loaded.labels[expected]
    assert next(e for e in evs if e["type"] == "done")["reason"] == "classified"


# --------------------------------------------------------------------------- limits and bad requests


def test_requests_over_a_limit_are_refused_with_one_line(client, playground_models):
    model = ids_of(playground_models, "char-gpt")
    over = [
        ({"prompt": "a" * 2001}, "the limit is 2,000"),
        ({"max_new_tokens": 401}, "the limit is 400"),
        ({"columns": [{"model": model}] * 5}, "the limit is 4"),
        ({"columns": [{"model": model, "history": [{"user": "x" * 5000, "reply": "y" * 3001}]}]},
         "the limit is 8,000"),
        ({"prompt": ""}, "empty"),
    ]
    for change, words in over:
        body = {"prompt": PROMPT, "columns": [{"model": model}], **change}
        assert words in assert_one_line_error(client.post("/api/generate", json=body), 422), change
    huge = json.dumps({"prompt": "a" * 200_000, "columns": [{"model": model}]})
    response = client.post("/api/generate", content=huge, headers={"Content-Type": "application/json"})
    assert "larger than" in assert_one_line_error(response, 413)


def test_bad_requests_get_a_4xx_and_one_short_line_and_the_server_keeps_serving(client, playground_models):
    model = ids_of(playground_models, "char-gpt")
    good = {"prompt": PROMPT, "columns": [{"model": model}], "max_new_tokens": 3}
    json_type = {"Content-Type": "application/json"}
    raw = [
        ("{not json", 400), ("", 400), ("[]", 422), ('"text"', 422), ("null", 422),
        (json.dumps({**good, "temperature": "hot"}), 422),
        (json.dumps({**good, "temperature": -1}), 422),
        (json.dumps({**good, "temperature": 1e300}), 422),
        (json.dumps({**good, "max_new_tokens": 2.5}), 422),
        (json.dumps({**good, "max_new_tokens": "5"}), 422),
        (json.dumps({**good, "top_k": 0}), 422),
        (json.dumps({**good, "top_p": 0}), 422),
        (json.dumps({**good, "top_p": 1.5}), 422),
        (json.dumps({**good, "seed": -1}), 422),
        (json.dumps({**good, "seed": 2**40}), 422),
        (json.dumps({**good, "unknown": 1}), 422),
        (json.dumps({**good, "columns": []}), 422),
        (json.dumps({**good, "columns": [{"model": model, "history": [["a", "b"]]}]}), 422),
        (json.dumps({"columns": [{"model": model}]}), 422),
        (json.dumps(good).replace('"max_new_tokens": 3', '"temperature": NaN'), 422),
        (json.dumps(good).replace('"max_new_tokens": 3', '"temperature": Infinity'), 422),
    ]
    for body, status in raw:
        message = assert_one_line_error(client.post("/api/generate", content=body, headers=json_type), status)
        assert len(message) <= 200, message
    assert_one_line_error(client.post("/api/generate", content=json.dumps(good),
                                      headers={"Content-Type": "text/plain"}), 415)
    assert_one_line_error(client.post("/api/generate", data={"prompt": "x"}), 415)  # a form, as a page could post
    assert_one_line_error(client.get("/api/generate"), 405)
    assert_one_line_error(client.get("/api/nothing"), 404)
    # Text a model cannot read: a character-level model knows only its corpus's characters.
    message = assert_one_line_error(client.post("/api/generate", json={**good, "prompt": "ñ"}), 400)
    assert "not in the tokenizer's vocabulary" in message and "Chapter 3" in message
    assert tokens(events(client.post("/api/generate", json=good)))  # still serving


def test_a_model_is_named_by_its_id_never_by_a_path(client, playground_runs, monkeypatch):
    opened = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    for name in ["nothing", str(playground_runs / "course" / "gpt"), "runs/course/gpt", "../course-gpt",
                 "/etc/passwd", "course-gpt/../../x", "x" * 100]:
        body = {"prompt": PROMPT, "columns": [{"model": name}]}
        assert "GET /api/models lists the ids" in assert_one_line_error(client.post("/api/generate", json=body), 404)
    assert opened == []
    body = {"prompt": PROMPT, "columns": [{"model": "x" * 101}]}
    assert_one_line_error(client.post("/api/generate", json=body), 422)


def test_a_page_from_another_host_name_is_refused(client):
    # A web page cannot reach a server on 127.0.0.1 by giving its own name to that address (DNS rebinding).
    assert_one_line_error(client.get("/api/models", headers={"Host": "evil.example"}), 400)


def test_a_failure_inside_the_server_is_one_line_and_the_server_goes_on(playground_models, monkeypatch):
    import playground.server as server

    logged = []
    app = create_app(playground_models, Limits(), hosts=("testserver",), log=logged.append)
    model = ids_of(playground_models, "char-gpt")
    body = {"prompt": PROMPT, "columns": [{"model": model}], "max_new_tokens": 3}
    with TestClient(app, raise_server_exceptions=False) as c:
        with monkeypatch.context() as m:
            m.setattr(server, "make_columns", lambda *a: 1 / 0)
            assert "its terminal shows why" in assert_one_line_error(c.post("/api/generate", json=body), 500)
        assert "ZeroDivisionError" in logged[-1]
        with monkeypatch.context() as m:
            m.setattr(server, "step_all", lambda columns: 1 / 0)
            evs = events(c.post("/api/generate", json=body))
            assert evs[-1] == {"type": "error", "message": "the generation failed on the server; its terminal "
                                                           "shows why"}
        assert c.get("/api/status").json() == {"running": 0, "limit": 2}  # its place was given back
        assert tokens(events(c.post("/api/generate", json=body)))


def test_generations_are_limited_and_a_disconnect_stops_one(playground_models, serve, slowed):
    model = ids_of(playground_models, "char-gpt")
    slowed(playground_models[model], 0.02)  # 400 tokens would take 8 s
    app = create_app(playground_models, Limits(max_generations=1))
    body = {"prompt": PROMPT, "columns": [{"model": model}], "max_new_tokens": 400}
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        with http.stream("POST", "/api/generate", json=body) as first:
            lines = first.iter_lines()
            seen = [json.loads(next(lines)) for _ in range(5)]  # start, column, 3 tokens: it is running
            assert seen[-1]["type"] == "token"
            assert http.get("/api/status").json() == {"running": 1, "limit": 1}
            refused = http.post("/api/generate", json=body)
            assert "try again when one ends" in assert_one_line_error(refused, 429)
        # The client went away after a few tokens: the server stops that generation and frees its place.
        deadline = time.monotonic() + 10
        while http.get("/api/status").json()["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert http.get("/api/status").json()["running"] == 0
        short = events(http.post("/api/generate", json={**body, "max_new_tokens": 3}))
        assert len(tokens(short)) == 3


# --------------------------------------------------------------------------- the command


def run_course(*args, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "course", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False, cwd=ROOT)


def test_bad_command_lines_are_one_line_and_status_2(tmp_path):
    for args, words in [(["--port", "70000"], "argument --port"), (["--port", "http"], "argument --port"),
                        (["--max-new-tokens", "0"], "argument --max-new-tokens"),
                        (["--model", str(tmp_path), "--port", "0"], "is not a checkpoint of this course"),
                        (["--model", str(tmp_path / "none"), "--port", "0"], "not a folder"),
                        (["--runs", str(tmp_path), "--port", "0"], "no checkpoints found"),
                        (["--host", "no.such.host.invalid", "--port", "0"], "is not an address of this machine")]:
        proc = run_course("playground", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], (args, proc.stderr)


def test_help_imports_neither_torch_nor_the_server():
    probe = ("import io, runpy, sys\nfrom contextlib import redirect_stdout\nsys.argv = ['course', 'playground', "
             "'--help']\nwith redirect_stdout(io.StringIO()):\n    try:\n        runpy.run_module('course', "
             "run_name='__main__', alter_sys=True)\n    except SystemExit:\n        pass\n"
             "print(sorted(m for m in ('torch', 'fastapi', 'uvicorn') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60, check=False)
    assert proc.stdout.strip() == "[]", proc.stderr


def test_the_command_prints_its_address_and_warns_when_exposed(playground_runs):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "course", "playground", "--runs", str(playground_runs),
                             "--host", "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip("\n"))
            if "ready at" in line:
                break
        warnings = [line for line in lines if line.startswith("warning:")]
        assert len(warnings) == 1 and "--host 0.0.0.0" in warnings[0] and "no password" in warnings[0], lines
        url = lines[-1].split("ready at ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:"), lines
        assert len(httpx.get(url + "api/models", timeout=10).json()["models"]) == 5
    finally:
        proc.terminate()
        proc.wait(20)
