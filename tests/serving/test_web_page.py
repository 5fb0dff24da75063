"""The web page at GET / in a real browser: headless Chromium draws a fiber and gets a prediction.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium;
elsewhere the test skips and says why. The server runs the shipped model, so the page shows what
a user sees. ``MICROSTRAIN_PAGE_SCREENSHOT=docs/serving-page.png`` also writes the screenshot
there (palette PNG); the test itself writes to its temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil

import httpx
import numpy as np
import pytest

from serving.verify import fe_solver_available

SCREENSHOT_ENV_VAR = "MICROSTRAIN_PAGE_SCREENSHOT"
WINDOW = (1480, 1240)


def browser_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no headless browser here: install Debian's chromium and chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


def wait_for(driver, script: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(script)
    )


PREDICTED = (
    "return document.body.dataset.state === 'predicted' && "
    "document.body.dataset.version === String(state.version)"
)


@pytest.mark.slow
def test_draw_a_fiber_and_get_a_prediction(page_server, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser_or_skip()
    try:
        driver.get(page_server + "/")
        wait_for(driver, PREDICTED)  # the page starts with random fibers and predicts them

        driver.find_element(By.ID, "clear").click()
        wait_for(driver, PREDICTED)
        assert driver.find_element(By.ID, "fraction").text == "0.000"
        assert "single phase" in driver.find_element(By.ID, "warnings").text

        # a circle: press at a centre, drag out the radius, release
        editor = driver.find_element(By.ID, "editor")
        ActionChains(driver).move_to_element_with_offset(
            editor, -40, -50
        ).click_and_hold().move_by_offset(25, 30).move_by_offset(20, 4).release().perform()
        wait_for(driver, PREDICTED)
        mask = np.asarray(driver.execute_script("return Array.from(state.mask)")).reshape(32, 32)
        assert 0.05 < mask.mean() < 0.5 and mask[:16].sum() > mask[16:].sum()  # upper part
        assert float(driver.find_element(By.ID, "fraction").text) == round(mask.mean(), 3)

        # the page shows what the API answers for that mask
        body = {"fiber_mask": mask.tolist(), "applied_strain": 0.1, "quantities": True}
        answer = httpx.post(page_server + "/predict", json=body, timeout=30).json()
        shown = driver.find_element(By.ID, "ex-value").text.replace(",", "")
        assert int(shown) == round(answer["E_x"][0])
        assert len(driver.find_elements(By.CSS_SELECTOR, "#maps-pred canvas")) == 5

        # uploads: a .npy of E in MPa and a PNG mask (white fiber) become the same mask
        i, j = np.mgrid[0:32, 0:32]
        disc = ((i - 20) ** 2 + (j - 9) ** 2 < 36) | ((i - 6) ** 2 + (j - 24) ** 2 < 20)
        np.save(tmp_path / "e.npy", np.where(disc, 85000.0, 3000.0)[None, None])
        from serving.images import mask_to_png

        (tmp_path / "mask.png").write_bytes(mask_to_png(disc))
        upload = driver.find_element(By.ID, "upload")
        driver.execute_script("arguments[0].hidden = false", upload)
        for name in ("e.npy", "mask.png"):
            before = driver.execute_script("state.mask.fill(0); return state.version")
            upload.send_keys(str(tmp_path / name))
            wait_for(driver, f"return state.version > {before}")  # the file was read
            wait_for(driver, PREDICTED)
            got = driver.execute_script("return Array.from(state.mask)")
            np.testing.assert_array_equal(np.reshape(got, (32, 32)), disc.astype(int), name)
        driver.execute_script("arguments[0].hidden = true", upload)

        driver.find_element(By.ID, "random").click()
        wait_for(driver, PREDICTED)
        check_with_fe(driver, ("energy norm", "%"), error_maps=4)
        finish(driver, tmp_path / "page.png", os.environ.get(SCREENSHOT_ENV_VAR))
    finally:
        driver.quit()


def check_with_fe(driver, words: tuple[str, ...], error_maps: int) -> None:
    """Press the FE check (where the solver is installed) and wait for it: it must end "done",
    its measures table name each of ``words`` and ``error_maps`` error maps be drawn."""
    from selenium.webdriver.common.by import By

    if not fe_solver_available():
        return
    driver.find_element(By.ID, "fe-button").click()
    wait_for(driver, "return ['done', 'error'].includes(document.body.dataset.fe)", 300)
    assert driver.execute_script("return document.body.dataset.fe") == "done", driver.find_element(
        By.ID, "fe-status"
    ).text
    table = driver.find_element(By.ID, "measures").text
    assert all(word in table for word in words), table
    assert len(driver.find_elements(By.CSS_SELECTOR, "#maps-err canvas")) == error_maps


def finish(driver, shot, target: str | None) -> None:
    """No error in the browser's console, then :func:`save_page`."""
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], json.dumps(errors, indent=1)
    save_page(driver, shot, target)


def save_page(driver, shot, target: str | None) -> None:
    """A screenshot of the whole page to ``shot``, and cropped to the page at ``target``."""
    bottom = "return Math.ceil(document.querySelector('footer').getBoundingClientRect().bottom)"
    driver.set_window_size(WINDOW[0], max(WINDOW[1], driver.execute_script(bottom) + 200))
    height = driver.execute_script(bottom)
    assert driver.save_screenshot(str(shot))
    if target:
        from PIL import Image

        with Image.open(shot) as image:  # the page, without the window below it
            image.convert("RGB").crop((0, 0, WINDOW[0], height)).save(target, optimize=True)


PERIODIC_SCREENSHOT_ENV_VAR = "MICROSTRAIN_PAGE_SCREENSHOT_PERIODIC"


@pytest.mark.slow
def test_the_periodic_model_under_a_shear_load(page_server, tmp_path):
    """Select the periodic model, load the cell in pure shear: the page shows what the API
    answers (C_eff, G_12, the load's mean strain), a circle drawn across an edge wraps around,
    and the FE check compares the unit cases and C_eff."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver = browser_or_skip()
    try:
        driver.get(page_server + "/")
        wait_for(driver, PREDICTED)
        Select(driver.find_element(By.ID, "model-select")).select_by_value("periodic")
        wait_for(driver, "return document.body.dataset.mode === 'periodic'")
        wait_for(driver, PREDICTED)
        assert driver.find_element(By.ID, "load-editor").is_displayed()
        assert not driver.find_element(By.ID, "strain").is_displayed()  # ū is uniaxial only

        driver.find_element(By.CSS_SELECTOR, ".preset[data-preset='shear']").click()
        wait_for(driver, PREDICTED)
        load = [
            float(driver.find_element(By.ID, f"load-{k}").get_attribute("value")) for k in range(3)
        ]
        assert load == [0, 0, 50]
        mask = np.asarray(driver.execute_script("return Array.from(state.mask)")).reshape(32, 32)
        body = {"model": "periodic", "fiber_mask": mask.tolist(), "macro_stress": load}
        answer = httpx.post(page_server + "/predict", json=body, timeout=30).json()
        g12 = driver.find_element(By.CSS_SELECTOR, "[data-constant='G_12'] .value").text
        assert int(g12.replace(",", "")) == round(answer["engineering_constants"]["G_12"][0])
        cells = driver.find_elements(By.CSS_SELECTOR, "#ceff-table td")
        shown = np.asarray([float(c.text.replace(",", "")) for c in cells]).reshape(3, 3)
        np.testing.assert_array_equal(shown, np.round(answer["C_eff"][0]))
        # the maps show the load's field: its mean shear strain is the macro strain's
        mean_shear = driver.execute_script(
            "return state.prediction.gamma_xy.reduce((a, b) => a + b, 0) / 1024"
        )
        assert mean_shear == pytest.approx(answer["macro_strain"][0][2], rel=1e-4)

        # a circle drawn across the left edge continues on the right
        driver.find_element(By.ID, "clear").click()
        wait_for(driver, PREDICTED)
        editor = driver.find_element(By.ID, "editor")
        left = -editor.size["width"] // 2 + 18  # the first column of the cell
        ActionChains(driver).move_to_element_with_offset(
            editor, left, 0
        ).click_and_hold().move_by_offset(45, 0).release().perform()
        wait_for(driver, PREDICTED)
        mask = np.asarray(driver.execute_script("return Array.from(state.mask)")).reshape(32, 32)
        assert mask[:, 0].any() and mask[:, -1].any() and not mask[:, 16].any()

        driver.find_element(By.ID, "random").click()
        wait_for(driver, PREDICTED)
        driver.find_element(By.CSS_SELECTOR, ".preset[data-preset='shear']").click()
        wait_for(driver, PREDICTED)
        check_with_fe(driver, ("energy norm", "C", "%"), error_maps=3)
        finish(driver, tmp_path / "periodic.png", os.environ.get(PERIODIC_SCREENSHOT_ENV_VAR))
    finally:
        driver.quit()
