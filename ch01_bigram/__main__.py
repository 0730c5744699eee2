from .cli import main
from .errors import run_cli

run_cli(main)
