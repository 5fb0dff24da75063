"""The breakeven counter of the service (serving.state): τ read from the card, never recomputed."""

from __future__ import annotations

import json

import pytest

from serving.state import PredictionCounter, breakeven_report

CARD = {"T_data": 100.0, "T_train": 50.0, "T_simulation": 0.5, "T_surrogate": 0.001}


def test_tau_is_the_cards_value_even_where_the_times_would_give_another():
    # the times give 150 / 0.499 ≈ 300.6; the card's τ was measured with other times
    report = breakeven_report(617, {**CARD, "tau": 1234.0})
    assert report["tau"] == 1234.0 and report["tau_text"] == "1,234 predictions"
    assert report["fraction_of_tau"] == 617 / 1234.0 and report["paid_off"] is False
    assert report["seconds_saved"] == pytest.approx(617 * 0.499 - 150.0, rel=1e-12)


def test_tau_null_in_the_card_means_never():
    report = breakeven_report(10**6, {**CARD, "T_surrogate": 0.7, "tau": None})
    assert report["tau"] is None and report["tau_text"] == "never"
    assert report["fraction_of_tau"] is None and report["paid_off"] is False
    assert report["seconds_saved"] == pytest.approx(10**6 * -0.2 - 150.0, rel=1e-12)


@pytest.mark.parametrize("missing", ["tau", "T_data"])
def test_a_card_without_tau_or_times_gives_none_not_guesses(missing):
    card = {**CARD, "tau": 300.0}
    del card[missing]
    report = breakeven_report(5, card)
    assert report["fraction_of_tau"] is None and report["seconds_saved"] is None
    assert "lacks" in report["note"]


def test_the_count_survives_a_new_counter_and_is_whole_json(tmp_path):
    counter = PredictionCounter.for_model("ab" * 32, tmp_path)
    counter.add(3)
    assert counter.read()["predictions"] == 3
    counter.add(4)
    assert counter.flush() == 7
    again = PredictionCounter.for_model("ab" * 32, tmp_path)
    state = json.loads(again.path.read_text())
    assert state["predictions"] == 7 and state["first_served"].endswith("+00:00")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"serving-{'ab' * 8}.json",
        f"serving-{'ab' * 8}.lock",
    ]  # no temporary file left behind


def test_a_state_directory_that_cannot_be_made_does_not_fail_predictions(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    counter = PredictionCounter.for_model("cd" * 32, blocker)
    counter.add(5)  # no exception: the prediction is still served
    assert counter.read()["predictions"] == 0  # the count stays put


def test_buffered_counters_of_two_workers_add_up(tmp_path):
    """Two counters on one file stand for two workers, each writing once in a while."""
    import threading

    workers = [PredictionCounter.for_model("ef" * 32, tmp_path) for _ in range(2)]
    for counter in workers:
        counter.start(interval_s=0.005)

    def serve(counter: PredictionCounter, n: int) -> None:
        for _ in range(300):
            counter.add(n)

    pairs = zip(workers, (1, 2), strict=True)
    threads = [threading.Thread(target=serve, args=pair) for pair in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert workers[0].read()["predictions"] >= 300  # the file and what is not written yet
    for counter in workers:
        counter.stop()  # writes what is pending
    assert json.loads(workers[0].path.read_text())["predictions"] == 900
