"""Settings declared once: each field of a settings class carries its default, its allowed values and its help.

    @dataclass
    class TrainConfig:
        steps: int = setting(3000, positive_int, "optimisation steps")
        lr: float = setting(1e-2, learning_rate, "AdamW learning rate")

        def __post_init__(self):
            check_fields(self)       # the Python API refuses what the command line refuses

    add_flags(parser, TrainConfig)   # --steps, --lr: typed by their rules, helped by their help
    cfg = from_args(args, TrainConfig())      # the defaults, with what the user gave

A preset is a named instance (`replace(TrainConfig(), steps=450)`); `add_flags(..., defaults=preset)` shows its
values in --help, and `from_args(args, preset)` changes only what was given. A setting a later chapter shares
is declared once: `lr: float = setting_like(Recipe, "lr", 2e-3)` is Chapter 3's, with another default.
The flags every command shares (`--device`, `--dtype`, `--seed`, `--no-progress`, `--threads`) are declared
here once, by `add_run_flags`, with one default each, checked when the command line is parsed.

No torch here: building a parser, and so `--help`, stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from dataclasses import MISSING, fields

from .errors import CourseError
from .numbers import Number, positive_int
from .numbers import seed as seed_number

# The seed of every run that is not given one: the course's runs and figures are made with it.
DEFAULT_SEED = 1337
# Number formats a command accepts ("auto": the fastest this device has; coursekit.hardware.resolve_dtype).
DTYPE_CHOICES = ("auto", "float32", "bfloat16", "float16")


def setting(default=MISSING, rule: Number | None = None, help: str = "", *, choices: tuple | None = None,
            factory=MISSING, flag: bool = True, metavar: str | None = None, unset: str | None = None):
    """A dataclass field with what the command line needs: its `rule` (a `Number`: the option's type and the
    check of the Python API), `choices` for a name, its `help`; `flag=False` keeps it off the command line;
    `unset` says what a default of None does (the help's "(default: one document per file)")."""
    meta = {"rule": rule, "help": help, "choices": choices, "flag": flag, "metavar": metavar, "unset": unset}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting_like(cls, name: str, default, *, flag: bool | None = None):
    """The setting `name` of the settings class `cls` (its rule, choices and help: declared once, where a chapter
    introduces it) with another default; `flag` puts it on or takes it off this class's command line."""
    meta = dict(next(f for f in fields(cls) if f.name == name).metadata)
    if flag is not None:
        meta["flag"] = flag
    return dataclasses.field(default=default, metadata=meta)


def check_fields(obj) -> None:
    """Refuse, in the command line's words, the first field of `obj` outside its rule or its choices."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        rule, choices = f.metadata.get("rule"), f.metadata.get("choices")
        if rule is not None:
            rule.check(f.name, value)
        elif choices is not None and (not isinstance(value, str) or value not in choices):
            raise CourseError(f"{f.name} must be one of {', '.join(choices)}, got {str(value)[:40]!r}")
        elif f.type in (bool, "bool") and not isinstance(value, bool):
            raise CourseError(f"{f.name} must be true or false, got {str(value)[:40]!r}")


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser, cls, *, defaults=None, only: tuple[str, ...] | None = None, skip: tuple[str, ...] = (),
              title: str | None = None):
    """One option per field of `cls` that has a help (`--batch-size` for batch_size), in field order.

    An option not given leaves no attribute (argparse.SUPPRESS), so `from_args` changes only what the user
    gave (a value may be None itself: `--eval-iters all`); the help
    names the range and the default of `defaults` (an instance: a preset shows its own values).
    `only`/`skip` choose fields; `title` puts them in an argument group. Returns the group or parser.
    A true/false field is a switch: `--name` turns on one that `defaults` has off, `--no-name` turns off one
    it has on (`--no-bias`).
    """
    target = parser.add_argument_group(title) if title else parser
    defaults = defaults if defaults is not None else cls()
    for f in fields(cls):
        if not f.metadata.get("flag", False) or not f.metadata.get("help") or f.name in skip:
            continue
        if only is not None and f.name not in only:
            continue
        default = getattr(defaults, f.name)
        rule, choices = f.metadata.get("rule"), f.metadata.get("choices")
        if f.type in (bool, "bool"):
            if default is True:  # a switch that is on: the option turns it off (--no-bias for bias)
                target.add_argument("--no-" + flag_name(f.name)[2:], dest=f.name, action="store_false",
                                    default=argparse.SUPPRESS,
                                    help=_escape(f"turn off: {f.metadata['help']} (default: on)"))
            else:
                target.add_argument(flag_name(f.name), action="store_true", default=argparse.SUPPRESS,
                                    help=_escape(f.metadata["help"]))
            continue
        words = f.metadata["help"]
        if rule is not None:
            words += f"; {rule.describe()}"
        shown = next((w for w, v in (rule.words.items() if rule else ()) if v == default), default)
        if default is None and f.metadata.get("unset"):
            shown = f.metadata["unset"]
        target.add_argument(flag_name(f.name), type=rule or str, choices=choices, default=argparse.SUPPRESS,
                            metavar=f.metadata.get("metavar") or (None if choices else f.name.upper()),
                            help=_escape(f"{words} (default: {shown})"))
    return target


def number_text(x: float) -> str:
    """A setting's value as the course writes it in prose (a description naming a preset's values): a small
    rate as a power of ten ('1e-2', '1.5e-2', not '0.01'), anything else as '%g' writes it."""
    if isinstance(x, float) and x != 0 and abs(x) < 0.1:
        mantissa, exponent = f"{x:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{x:g}"


def _escape(help: str) -> str:
    """A help text as argparse prints it: it formats '%(default)s' and the like, so a plain '%' is doubled."""
    return help.replace("%", "%%")


def from_args(args: argparse.Namespace, base, names: tuple[str, ...] | None = None):
    """`base` (a settings instance) with every field the command line gave replaced; the rest as they were."""
    given = {f.name: getattr(args, f.name) for f in fields(base)
             if (names is None or f.name in names) and hasattr(args, f.name)}
    return dataclasses.replace(base, **given) if given else base


# --------------------------------------------------------------------------- the flags every command shares

def device_name(text: str) -> str:
    """auto, cpu, mps, cuda or cuda:N, checked when the command line is parsed (whether it exists: at run time)."""
    name = text.strip().lower()
    if name in ("auto", "cpu", "mps", "cuda") or re.fullmatch(r"cuda:\d{1,3}", name):
        return name
    raise argparse.ArgumentTypeError(f"must be auto, cpu, cuda, cuda:N or mps, got {text!r}")


device_name.__name__ = "device"  # argparse names a bad value's type by it


def add_run_flags(parser, *, device: bool = True, dtype: bool = True, seed: bool = True, progress: bool = True,
                  threads: bool = False, seed_help: str = "the same seed gives the same run"):
    """--device, --dtype, --seed, --no-progress and --threads, each with its one default."""
    g = parser.add_argument_group("run")
    if device:
        g.add_argument("--device", type=device_name, default="auto",
                       help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto)")
    if dtype:
        g.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                       help="number format of the forward passes (default auto: bfloat16 autocast on recent GPUs, "
                            "float16 on older ones; on a CPU with bfloat16 hardware, bfloat16 from 256 wide, "
                            "else float32, so the chapters' small models train in float32 on every CPU)")
    if seed:
        g.add_argument("--seed", type=seed_number, default=DEFAULT_SEED,
                       help=f"random seed, {seed_number.describe()}; {seed_help} (default: {DEFAULT_SEED})")
    if progress:
        g.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if threads:
        g.add_argument("--threads", type=positive_int, metavar="N",
                       help="CPU threads for PyTorch (default: as PyTorch chooses, one per core)")
    return g
