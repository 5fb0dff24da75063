"""`python -m data_gen`: the data_gen commands of `microstrain` on their own."""

from data_gen.cli import register
from microstrain.app import make_app, run

run(make_app(register, help="microstrain: data_gen commands"))
