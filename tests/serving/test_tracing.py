"""Per-request tracing is off unless MICROSTRAIN_TRACING=1 (serving/settings.py)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("value", "skipped"), [(None, True), ("0", True), ("1", False)])
def test_tracing_skips_every_path_unless_enabled(monkeypatch, value, skipped):
    """BentoML's OpenTelemetry middleware reads the exclusion list as comma-separated regular
    expressions searched in the request URL (opentelemetry.util.http)."""
    from opentelemetry.util.http import parse_excluded_urls

    from serving.settings import TRACING_ENV_VAR, tracing_config

    if value is None:
        monkeypatch.delenv(TRACING_ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(TRACING_ENV_VAR, value)
    config = tracing_config()
    if not skipped:
        assert config == {}  # BentoML's own tracing configuration applies
        return
    excluded = parse_excluded_urls(config["excluded_urls"])
    for path in ("/predict_npy", "/predict", "/verify", "/", "/model?x=1"):
        assert excluded.url_disabled(f"http://127.0.0.1:3000{path}")
