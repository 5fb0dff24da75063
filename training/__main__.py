"""`python -m training`: the training commands of `microstrain` on their own."""

from microstrain.app import make_app, run
from training.cli import register

run(make_app(register, help="microstrain: training commands"))
