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
    assert counter.add(3) == 3 and counter.add(4) == 7
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
    assert counter.add(5) == 0  # the count stays put; the prediction is still served
