"""Fixtures of the playground's tests (test_playground_api.py, test_playground_browser.py).

`playground_runs` trains, in seconds, a runs/ folder that holds a checkpoint of every kind the playground
shows, in the layouts the course writes them: the main job's path with tiny models (runs/course/: bigram,
character-level GPT, a pretraining run, an instruction-tuned GPT) and a classifier fine-tuned for one epoch
(runs/ch05/classify). The models are small and barely trained: the tests check the playground, not them.
With PLAYGROUND_RUNS=DIR the tests use the models in DIR instead (the same layout, from `python -m course` and
`python -m ch05_finetune classify`): that is how the README's screenshot shows models trained for real.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def playground_runs(tmp_path_factory) -> Path:
    from ch05_finetune.classify import finetune_classifier, save_classifier
    from ch05_finetune.config import CLASSIFY_FIT
    from ch05_finetune.labelled import builtin_reviews, make_splits
    from ch05_finetune.pretrained import load_start
    from course import Plan, run_course

    if os.environ.get("PLAYGROUND_RUNS"):
        return Path(os.environ["PLAYGROUND_RUNS"])
    runs = tmp_path_factory.mktemp("playground") / "runs"
    quick = Plan.quick()
    # A few hundred steps more than --quick for the character models (2 s): their text then has words in it.
    plan = replace(quick, bigram=replace(quick.bigram, steps=600, eval_interval=300),
                   gpt_recipe=replace(quick.gpt_recipe, steps=300, eval_interval=150))
    run_course(runs / "course", plan, device="cpu", progress=False, log=lambda *_: None)
    model, codec, _ = load_start(runs / "course" / "pretrain", progress=False, log=None)
    reviews = builtin_reviews(200)
    train, val, _test = make_splits(reviews, how="balanced")
    finetune_classifier(model, codec, train, val, replace(CLASSIFY_FIT, epochs=1), progress=False, log=None)
    save_classifier(model, codec, reviews.label_names, runs / "ch05" / "classify")
    return runs


@pytest.fixture(scope="session")
def playground_models(playground_runs) -> dict:
    """id -> loaded model, for every checkpoint of `playground_runs`, as the command finds and loads them."""
    from playground.checkpoints import find_checkpoints, load, model_ids

    found = find_checkpoints([playground_runs])
    return {model_id: load(f) for model_id, f in zip(model_ids(found), found)}


@contextmanager
def live_server(app):
    """Serve `app` with uvicorn on a free port of 127.0.0.1, in a thread, as the command serves it; yields its
    address, and stops it after."""
    from playground.cli import make_server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    ready = threading.Event()
    server = make_server(app, ready.set)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    if not ready.wait(30):
        raise RuntimeError("the playground's server did not start within 30 s")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="session")
def serve():
    """`with serve(app) as url:` runs `app` on a real server (a real socket: disconnects are real)."""
    return live_server


def slow_down(monkeypatch, loaded, seconds: float) -> None:
    """Make each forward pass of a loaded model take at least `seconds`, so that a test sees a reply arrive
    token by token, and has time to stop it (the models here generate hundreds of tokens a second)."""
    import time

    model = loaded.model
    forward = model.forward

    def slow(*args, **kwargs):
        time.sleep(seconds)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", slow)


@pytest.fixture
def slowed(monkeypatch):
    """`slowed(loaded, seconds)`: `slow_down` for this test only."""
    return lambda loaded, seconds: slow_down(monkeypatch, loaded, seconds)
