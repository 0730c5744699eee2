"""The prompt template of instruction tuning, and truncation that keeps it whole.

A pretrained model continues text; an instruction-tuned one has learned that
after "### Response:" comes an answer and then <|endoftext|>. The template is
that fixed frame around the user's text. Its pieces are encoded one by one
(frame, instruction, frame, input, frame), the same way in training and in
use, so a prompt that is too long can be cut inside the user's text, from
the left, while every piece of the frame survives.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from coursekit import CourseError


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    preamble: str = ""
    instruction_header: str = "### Instruction:\n"
    input_header: str = "\n\n### Input:\n"
    response_header: str = "\n\n### Response:\n"

    def pieces(self) -> list[str]:
        return [self.preamble + self.instruction_header, self.input_header, self.response_header]

    def format(self, instruction: str, input: str = "") -> str:
        """The prompt as text (what `encode` encodes)."""
        middle = self.input_header + input if input else ""
        return self.preamble + self.instruction_header + instruction + middle + self.response_header

    def encode(self, codec, instruction: str, input: str = "", max_tokens: int | None = None) -> tuple[list[int], bool]:
        """Token ids of the prompt, and whether the user's text was cut to fit `max_tokens`.

        The input is cut first (from the left, as the model cannot see further
        back anyway), then the instruction; the frame is never cut.
        """
        head = codec.encode(self.preamble + self.instruction_header)
        instr = codec.encode(instruction)
        mid = codec.encode(self.input_header) if input else []
        inp = codec.encode(input) if input else []
        tail = codec.encode(self.response_header)
        cut = False
        if max_tokens is not None:
            room = max_tokens - len(head) - len(mid) - len(tail)
            if room < 1:
                raise CourseError(f"the context of {max_tokens} tokens is too short for the prompt template "
                                  f"({len(head) + len(mid) + len(tail)} tokens) plus any text")
            if len(instr) + len(inp) > room:
                cut = True
                keep_input = max(room - len(instr), 0)  # the input goes first ...
                inp = inp[len(inp) - keep_input:] if keep_input else []
                keep_instruction = room - len(inp)      # ... then the start of the instruction
                instr = instr[len(instr) - keep_instruction:]
        return head + instr + mid + inp + tail, cut

    def to_meta(self) -> dict:
        return {"name": self.name, "preamble": self.preamble, "instruction_header": self.instruction_header,
                "input_header": self.input_header, "response_header": self.response_header}

    @classmethod
    def from_meta(cls, meta: dict) -> PromptTemplate:
        """The template a checkpoint's config.json records (untrusted: every field must be text, none unknown)."""
        known = {f.name for f in fields(cls)}
        if not (isinstance(meta, dict) and "name" in meta and set(meta) <= known
                and all(isinstance(v, str) and len(v) <= 10_000 for v in meta.values())):
            raise CourseError("the checkpoint's prompt template in config.json is damaged: it should name the "
                              "template's pieces, each as text")
        return cls(**meta)


ALPACA_PREAMBLE = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n")
TEMPLATES = {
    # The short frame is the default: every token of frame costs compute on every example.
    "compact": PromptTemplate("compact"),
    "alpaca": PromptTemplate("alpaca", preamble=ALPACA_PREAMBLE),
}


def get_template(name: str) -> PromptTemplate:
    if name not in TEMPLATES:
        raise CourseError(f"unknown template {name!r}; choose one of {', '.join(TEMPLATES)}")
    return TEMPLATES[name]
