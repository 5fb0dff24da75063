"""`python -m data_gen`: the data_gen commands of `microstrain` on their own."""

from microstrain.cli import make_app, run
from data_gen.cli import register

run(make_app(register, help="microstrain: data_gen commands"))
