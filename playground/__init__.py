"""The playground: every model the course trained, in the browser (`python -m course playground`).

    settings.py     the server's limits, each declared once (no torch: `--help` stays fast)
    cli.py          the `playground` command of the main job: finds the checkpoints, starts the server
    checkpoints.py  finding the course's checkpoints under runs/ and loading each kind of model
    columns.py      one model's part of a request: its prompt made ready, then a token (and its top 5) per step
    server.py       the web server (FastAPI on uvicorn): the page, the list of models, the streamed replies
    static/         the page itself: hand-written HTML, CSS and JavaScript, served by the course (no CDN)

Sampling is Chapter 3's (`ch03_gpt.stream_with_probs`); chat framing is Chapter 5's (`ch05_finetune.chat`);
the classifier is Chapter 5's (`ch05_finetune.classify`). This package only connects them to a page.
"""
