"""The playground's limits and address, each declared once with its default, its range and its help.

A server that runs models on request must bound what one request can cost: the prompt's length, the tokens it
may ask for, the models side by side, the chat history it sends, and how many generations run at once. The
command line's options are made from these fields (`coursekit.settings.add_flags`). No torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

from coursekit.numbers import Number, int_in
from coursekit.settings import check_fields, setting

DEFAULT_HOST = "127.0.0.1"  # this machine only; --host exposes it, with a warning
DEFAULT_PORT = 8765
port_number = Number(int, 0, 65535)  # 0: any free port (the tests use it)


@dataclass(frozen=True)
class Limits:
    max_prompt_chars: int = setting(2000, int_in(1, 100_000), "longest prompt a request may send, in characters",
                                   metavar="N")
    max_new_tokens: int = setting(400, int_in(1, 10_000), "most tokens one model may generate for one request",
                                 metavar="N")
    max_generations: int = setting(2, int_in(1, 64), "generations running at once; one more is refused "
                                                     "(HTTP 429) until one ends", metavar="N")
    max_columns: int = setting(4, int_in(1, 8), "most models side by side in one request", metavar="N")
    max_history_chars: int = setting(8000, int_in(0, 1_000_000),
                                     "characters of chat history a request may send (instruction-tuned models)",
                                     metavar="N")

    def __post_init__(self):
        check_fields(self)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body worth reading: the prompt and history at 6 bytes a character (a JSON escape
        such as \\u00e9), and room for the settings."""
        return 6 * (self.max_prompt_chars + self.max_history_chars) + 16_384
