"""`python -m evaluation`: the evaluation commands of `microstrain` on their own."""

from evaluation.cli import register
from microstrain.app import make_app, run

app = make_app(register, help="microstrain: evaluation commands")
# typer runs an app of one command as that command; a callback keeps `python -m evaluation tau`
app.callback()(lambda: None)
run(app)
