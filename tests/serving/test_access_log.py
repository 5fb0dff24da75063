"""BentoML's line per request only with MICROSTRAIN_ACCESS_LOG=1 (serving/settings.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from microstrain.errors import MicrostrainError
from serving.settings import ACCESS_LOG_ENV_VAR, logging_config

ACCESS_LINE = "method=GET,path=/model"  # BentoML's format: (scheme=http,method=GET,path=...)


def logged(log_path: Path, text: str, wait_s: float = 3.0) -> bool:
    deadline = time.monotonic() + wait_s  # the worker's log reaches the file asynchronously
    while time.monotonic() < deadline:
        if text in log_path.read_text():
            return True
        time.sleep(0.2)
    return False


def test_no_line_per_request_by_default(server):
    url, log_path = server
    assert httpx.get(f"{url}/model", timeout=10).status_code == 200
    assert not logged(log_path, ACCESS_LINE)


def test_a_line_per_request_when_asked_for(access_log_server):
    url, log_path = access_log_server
    assert httpx.get(f"{url}/model", timeout=10).status_code == 200
    assert logged(log_path, ACCESS_LINE)


def test_the_setting_is_0_or_1(monkeypatch):
    monkeypatch.delenv(ACCESS_LOG_ENV_VAR, raising=False)
    assert logging_config() == {"access": {"enabled": False}}
    monkeypatch.setenv(ACCESS_LOG_ENV_VAR, "1")
    assert logging_config() == {"access": {"enabled": True}}
    monkeypatch.setenv(ACCESS_LOG_ENV_VAR, "yes")
    with pytest.raises(MicrostrainError, match="MICROSTRAIN_ACCESS_LOG must be 0 or 1"):
        logging_config()
