"""One model's part of a request: its prompt made ready, then one token per step, with what the model considered.

A request sends one prompt to one or more models, each shown in its own column. A `Column` does the work of
one: it frames the prompt the way its model expects, then each `step` samples one token through Chapter 3's
loop (`ch03_gpt.stream_with_probs`) and returns it as events the page draws:

    {"type": "column", "column": 0, "sees": "...", "notes": [...]}        first: the text the model is given
    {"type": "token", "column": 0, "text": "e", "top": [...], ...}        one per sampled token
    {"type": "label", "column": 0, "label": "positive", "probs": [...]}   a classifier's answer instead of tokens
    {"type": "done", "column": 0, "reason": "...", "tokens": 17}          last

How each kind takes the prompt:

- a bigram, a character-level GPT, a pretrained GPT: the raw text, continued;
- an instruction-tuned GPT: the message framed by its own template after the conversation so far, oldest turns
  dropped to fit the window, as `python -m ch05_finetune chat` does (`ch05_finetune.chat.reply_prompt`); the
  answer ends at <|endoftext|>;
- a classifier: the text read as it was trained to read it (windows, head, tail...), scored once
  (`ch05_finetune.classify`).

`top` lists the 5 most likely next tokens as sampling saw them: after the temperature and the top-k/top-p
filter (`ch03_gpt.sampling_probs`), so they are the probabilities the token was drawn with. At temperature 0
nothing is drawn (the most likely token is taken); `top` is then the model's own distribution, at temperature 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ch03_gpt import check_sampling, stream_with_probs
from coursekit import CourseError

from .checkpoints import CHARACTER_KINDS, CHAT, CLASSIFIER, Loaded

TOP = 5  # next tokens shown for each step


@dataclass(frozen=True)
class Sampling:
    """The settings of one request, the same for every column."""

    max_new_tokens: int
    temperature: float
    top_k: int | None
    top_p: float | None
    seed: int


def considered(probs: torch.Tensor, chosen: int, token_text, k: int = TOP) -> list[dict]:
    """The `k` most likely tokens of `probs` (V,), most likely first, the chosen one marked; the chosen one is
    added with its rank when it is not among them (a high temperature can pick a token ranked 40th). Tokens the
    filter removed (probability 0) are left out: with top-k 1 the list is the chosen token alone, at 1.0."""
    values, ids = torch.topk(probs, min(k, probs.numel()))
    rows = []
    for p, i in zip(values.tolist(), ids.tolist()):
        if p <= 0.0:
            break
        rows.append({"id": i, "text": token_text(i), "p": round(p, 6), "chosen": i == chosen, "rank": len(rows) + 1})
    if not any(row["chosen"] for row in rows):
        p = float(probs[chosen])
        rank = int((probs > probs[chosen]).sum()) + 1
        rows.append({"id": chosen, "text": token_text(chosen), "p": round(p, 6), "chosen": True, "rank": rank})
    return rows


class Column:
    """One model's reply to the request's prompt, made one step at a time (`step`), each step a token.

    The constructor does everything that can refuse the request (text the model cannot read, settings out of
    range) so that the server can answer 400 before it streams anything; `step` then only samples.
    """

    def __init__(self, index: int, model_id: str, loaded: Loaded, prompt: str, history: list[tuple[str, str]],
                 sampling: Sampling):
        self.index, self.model_id, self.loaded, self.sampling = index, model_id, loaded, sampling
        self.notes: list[str] = []
        self.tokens = 0
        self.finished = False
        self.pieces: list[str] = []
        self.steps = None  # the sampling loop, once it starts
        kind, unit = loaded.kind, "characters" if loaded.kind in CHARACTER_KINDS else "tokens"
        top_k = None if sampling.top_k is None else min(sampling.top_k, loaded.vocab_size)  # above V: keep all
        try:
            if kind == CLASSIFIER:
                self.ids = self._classifier_ids(prompt)
                self.budget = 0
            elif kind == CHAT:
                from ch05_finetune.chat import reply_prompt

                # The answer may take at most half the window: the other half holds the framed message (a
                # long budget would leave the template no room) and as much of the conversation as fits.
                answer = min(sampling.max_new_tokens, loaded.context // 2)
                if answer < sampling.max_new_tokens:
                    self.notes.append(f"an answer here is at most {answer} tokens: half of the model's "
                                      f"{loaded.context}-token window, the other half holds your message")
                self.ids, self.budget, dropped, cut = reply_prompt(loaded.model, loaded.codec, loaded.template,
                                                                   history, prompt, answer)
                if dropped:
                    self.notes.append(f"the oldest {dropped} turn(s) of the conversation no longer fit in the "
                                      f"model's {loaded.context} tokens and were left out")
                if cut:
                    self.notes.append(f"the message is longer than the model's {loaded.context} tokens; it sees "
                                      f"its end")
                check_sampling(loaded.vocab_size, self.budget, sampling.temperature, top_k, sampling.top_p)
            else:
                self.ids = loaded.encode(prompt)
                self.budget = sampling.max_new_tokens
                if loaded.context == 1:
                    self.notes.append("a bigram sees one character: only the prompt's last one counts")
                elif len(self.ids) > loaded.context:
                    self.notes.append(f"the model sees the last {loaded.context} {unit} of the prompt only")
                check_sampling(loaded.vocab_size, self.budget, sampling.temperature, top_k, sampling.top_p)
        except CourseError as e:
            raise CourseError(f"{loaded.found.title} ({loaded.found.shown}): {e}") from None
        if loaded.codec is not None and loaded.codec.unknown_count(self.ids):
            self.notes.append(f"{loaded.codec.unknown_count(self.ids)} token(s) of the prompt are outside this "
                              f"model's vocabulary")
        self.top_k = top_k

    def _classifier_ids(self, prompt: str) -> list[int]:
        from ch05_finetune.classify import token_ids
        from ch05_finetune.long_texts import describe, views

        if not prompt.strip():
            raise CourseError("the text is empty; type something to classify")
        model = self.loaded.model
        # the text read as the classifier was trained to read it (`classify --long-texts`, in its config.json)
        max_len = min(getattr(model, "max_len", None) or self.loaded.context, self.loaded.context)
        ids = token_ids(self.loaded.codec, [prompt], "the text")[0]  # refuses text the model cannot read
        self.views = views(ids, max_len, model.long_texts)
        note = describe([len(ids)], max_len, model.long_texts)
        if note:
            self.notes.append("the text is longer than the classifier's window: " + note.split(": ", 2)[-1])
        return ids

    def start_event(self) -> dict:
        """What the model is given, as text (the window it sees, with a chat model's template and history)."""
        seen = self.ids[-self.loaded.context:]
        sees = "".join(self.loaded.token_text(i) for i in seen)
        return {"type": "column", "column": self.index, "model": self.model_id, "sees": sees, "notes": self.notes}

    def step(self) -> list[dict]:
        """Sample one token (or classify, for a classifier); the events it makes, `done` last when it ends."""
        if self.finished:
            return []
        if self.loaded.kind == CLASSIFIER:
            return self._classify()
        loaded, s = self.loaded, self.sampling
        if self.steps is None:
            device = loaded.device
            idx = torch.tensor([self.ids], dtype=torch.long, device=device)  # (1, T)
            self.generator = torch.Generator(device=device).manual_seed(s.seed)
            self.decode = loaded.new_decoder()
            stop = loaded.eot if loaded.kind == CHAT else None
            self.steps = stream_with_probs(loaded.model, idx, self.budget, s.temperature, self.top_k, s.top_p,
                                           stop_token=stop, use_cache=loaded.use_cache, generator=self.generator)
        token, probs = next(self.steps)      # (1,), (1, V)
        chosen = int(token[0])
        self.tokens += 1
        ended = loaded.kind == CHAT and chosen == loaded.eot
        text = "" if ended else self.decode(chosen)
        self.pieces.append(text)
        events = [{"type": "token", "column": self.index, "step": self.tokens, "id": chosen, "text": text,
                   "end_of_text": ended, "top": considered(probs[0], chosen, loaded.token_text)}]
        if ended or self.tokens >= self.budget:
            events.append(self.finish("the model ended its answer" if ended else "token limit reached"))
        return events

    def _classify(self) -> list[dict]:
        from ch05_finetune.classify import predict_proba

        probs = predict_proba(self.loaded.model, [self.views], self.loaded.codec.eot)[0].tolist()  # (classes,)
        best = max(range(len(probs)), key=probs.__getitem__)
        ranked = sorted(zip(self.loaded.labels, probs), key=lambda lp: -lp[1])
        event = {"type": "label", "column": self.index, "label": self.loaded.labels[best],
                 "probs": [{"label": label, "p": round(p, 6)} for label, p in ranked]}
        return [event, self.finish("classified")]

    def finish(self, reason: str) -> dict:
        """End the column (and its sampling loop) and say why; a chat answer as `chat` keeps it in the history."""
        self.finished = True
        self.close()
        done = {"type": "done", "column": self.index, "reason": reason, "tokens": self.tokens}
        if self.loaded.kind == CHAT:
            done["reply"] = "".join(self.pieces).strip()
        return done

    def close(self) -> None:
        if self.steps is not None:
            self.steps.close()  # runs the loop's `finally` now, not whenever it is collected
            self.steps = None
