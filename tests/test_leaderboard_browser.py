"""The leaderboard in a real browser: headless Chromium (Debian's package) driven by Playwright
opens the generated page from disk, sorts, filters, looks at the plots and the kept patches, and
writes screenshots for people to look at (PRUNEBENCH_ARTIFACTS, default <tmp>/prunebench-artifacts).

Skipped, with the reason, where there is no Chromium or no playwright package."""
import os
import tempfile
from pathlib import Path

import pytest
import torch
import yaml

from prunebench.leaderboard.browser import file_url, open_browser, unavailable_reason
from prunebench.leaderboard.render import render_leaderboard
from prunebench.records.record import as_record
from leaderboard_records import record_documents

from conftest import TINY
from leaderboard_records import reidentified, write_records
from test_leaderboard_render import EVIL, sweep

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser tests need headless Chromium: {REASON}")
ARTIFACTS = Path(os.environ.get("PRUNEBENCH_ARTIFACTS") or Path(tempfile.gettempdir()) / "prunebench-artifacts")


@pytest.fixture(scope="module")
def browser():
    with open_browser() as context:
        yield context


def open_page(browser, html_file):
    page = browser.new_page()
    problems = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type in ("error", "warning") else None)
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("request", lambda req: problems.append(f"request: {req.url}") if not req.url.startswith(("file:", "data:")) else None)
    page.goto(file_url(html_file))
    page.wait_for_selector("html[data-ready='1']", state="attached")
    return page, problems


def visible_rows(page, table_id):
    return page.locator(f"#{table_id} tbody tr:not(.hidden)")


def column_values(page, table_id, key):
    """data-v of the visible rows' cells in one column, in screen order."""
    return page.evaluate("""([id, key]) => {
        const table = document.getElementById(id);
        const index = Array.from(table.tHead.rows[0].cells).findIndex(th => th.dataset.key === key);
        return Array.from(table.tBodies[0].rows).filter(r => !r.classList.contains("hidden"))
            .map(r => r.cells[index].dataset.v === undefined ? r.cells[index].textContent : parseFloat(r.cells[index].dataset.v));
    }""", [table_id, key])


@pytest.fixture(scope="module")
def handmade_page(tmp_path_factory):
    """Two models on one task and one model on a second task; a method with a hostile name."""
    root = tmp_path_factory.mktemp("handmade")
    records = sweep() + sweep(model="ast-small") + sweep(task="esc50")
    for r in records[-3:]:  # topk at keep 0.5 on esc50
        r["method"]["name"], r["method"]["id"] = EVIL, EVIL + "-keep_rate=0.5"
    write_records(root / "results", [reidentified(r) for r in records])
    return render_leaderboard(root / "results", root / "leaderboard.html")


def test_sort_filter_and_plots_on_screen(browser, handmade_page):
    page, problems = open_page(browser, handmade_page)
    main = "main"
    assert visible_rows(page, main).count() == 9  # 3 groups x 3 methods
    assert page.locator("#row-count").inner_text() == "9 of 9 rows"

    # sort: the first click on a higher-is-better column puts the best first, the second reverses it
    header = page.locator("#main th[data-key='clean'] button")
    header.click()
    assert page.locator("#main th[data-key='clean']").get_attribute("aria-sort") == "descending"
    values = column_values(page, main, "clean")
    assert values == sorted(values, reverse=True)
    header.click()
    values = column_values(page, main, "clean")
    assert values == sorted(values) and page.locator("#main th[data-key='clean']").get_attribute("aria-sort") == "ascending"
    # lower-is-better (GMACs) sorts cheapest first
    page.locator("#main th[data-key='gmacs'] button").click()
    gmacs = column_values(page, main, "gmacs")
    assert gmacs == sorted(gmacs) and gmacs[0] == 1e9

    # filter by task, then by model: tables and figures follow
    page.select_option("#filter-task", "esc50/fold5")
    assert visible_rows(page, main).count() == 3
    assert set(column_values(page, main, "task")) == {"esc50/fold5"}
    assert page.locator("#row-count").inner_text() == "3 of 9 rows"
    visible_groups = page.locator(".fig-group:not(.hidden) h3").all_inner_texts()
    assert visible_groups and all("esc50/fold5" in t for t in visible_groups)
    page.select_option("#filter-task", "synth-esc/fold5")
    page.select_option("#filter-model", "ast-small")
    assert visible_rows(page, main).count() == 3
    assert set(column_values(page, main, "model")) == {"ast-small"}
    page.select_option("#filter-model", "")
    page.select_option("#filter-task", "")

    # the Pareto plots: visible, one point per method, the frontier drawn and labelled
    pareto = page.locator(".fig.pareto:not(.hidden) svg.plot.pareto")
    assert pareto.count() == 6  # 3 groups x (GMACs, throughput), clean score
    first = pareto.first
    assert first.is_visible() and first.bounding_box()["width"] > 300
    assert first.locator("circle.point").count() == 3 and first.locator("path.frontier").count() == 1
    assert "(on the Pareto frontier)" in first.locator("circle.point.front title").first.text_content()
    page.select_option("#pareto-y", "mean_noisy")
    assert page.locator(".fig.pareto:not(.hidden)").first.get_attribute("data-option") == "mean_noisy"
    assert page.locator(".fig.snr svg.plot.lines").first.is_visible()
    assert page.locator(".fig.snr svg.plot.lines").first.locator("circle.marker").count() == 9  # 3 methods x (2 SNRs + clean)

    # the hostile method name is on screen as text, and nothing ran or was injected
    assert page.get_by_text(EVIL).first.is_visible()
    assert page.locator("img").count() == 0 and page.locator("script").count() == 2
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "leaderboard-handmade.png"), full_page=True)
    assert problems == []


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    """A real run of a tiny model: none and topk 0.5, clean and white noise at two SNRs."""
    from prunebench.cli import main

    from prunebench.models import build_model
    from prunebench.models.checkpoint import save_checkpoint

    tmp = tmp_path_factory.mktemp("lb-run")
    torch.manual_seed(0)  # random weights: what is tested is the page, not the model; no training
    save_checkpoint(build_model("ast-tiny", num_classes=10, **TINY), tmp / "tiny.pt", {})
    config = {
        "seed": 0,
        "models": [{"name": "ast-tiny", "checkpoint": str(tmp / "tiny.pt")}],
        "tasks": [{"name": "synth-esc", "root": str(tmp / "synth"), "clips_per_fold": 2,
                   "corruptions": [{"name": "white", "snr_db": [20, 0]}]}],
        "methods": [{"name": "none"}, {"name": "topk", "keep_rate": 0.5}],
        "measure": {"throughput": False, "batch_size": 8},
    }
    (tmp / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(tmp / "run.yaml"), "--out", str(tmp / "results"), "--no-progress"]) == 0
    return tmp / "results"


def test_kept_patches_of_a_real_run(browser, real_run):
    page, problems = open_page(browser, real_run / "leaderboard.html")
    records = {(r["method"]["id"], r["task"]["variant"]): r for r in record_documents(real_run)}
    topk = records[("topk-keep_rate=0.5", "synth-esc/fold5")]
    clip = topk["examples"]["clips"][0]["id"]
    clips = as_record(topk).clips  # kept patches live in the record's sidecar
    kept = bin(int(clips.kept_patches[clips.ids.index(clip)], 16)).count("1")
    grid = topk["macs"]["grid"]
    stats = page.locator(f'.stats[data-method="topk-keep_rate=0.5"][data-clip="{clip}"]').inner_text()
    assert stats.startswith(f"clean: {kept} of {grid[0] * grid[1]} kept")
    assert page.locator(f'.stats[data-method="none"][data-clip="{clip}"]').inner_text().startswith(
        f"clean: {grid[0] * grid[1]} of {grid[0] * grid[1]} kept")

    def brightness(method, side):
        return page.evaluate("""([method, clip, side]) => {
            const c = document.querySelector(`canvas[data-method="${method}"][data-clip="${clip}"][data-side="${side}"]`);
            const copy = document.createElement("canvas");  // read a copy: the page's canvas is read only by eye
            copy.width = c.width; copy.height = c.height;
            const ctx = copy.getContext("2d", {willReadFrequently: true});
            ctx.drawImage(c, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i + 1] + d[i + 2];
            return s / (d.length / 4) / 3;
        }""", [method, clip, side])

    # the spectrogram is drawn, and dropped patches are dimmed: topk's picture is darker than none's
    none_clean, topk_clean = brightness("none", "clean"), brightness("topk-keep_rate=0.5", "clean")
    assert none_clean > 20 and topk_clean < 0.9 * none_clean
    # switching the noisy version redraws the noisy column and its statistics
    select = page.locator("select.kept-corruption")
    assert select.input_value() == "white@0dB"  # the middle of the sweep by default
    before = brightness("none", "noisy")
    select.select_option("white@20dB")
    assert brightness("none", "noisy") != before
    assert "Jaccard" in page.locator(f'.stats[data-method="topk-keep_rate=0.5"][data-clip="{clip}"]').inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "leaderboard-tiny-run.png"), full_page=True)
    assert problems == []


def test_where_the_tokens_go_of_a_real_run(browser, real_run):
    """The keep-frequency heatmap of topk, clean beside the noisiest condition, drawn on screen with
    one cell per (mel-band row, time span) and the baseline listed without a selection."""
    page, problems = open_page(browser, real_run / "leaderboard.html")
    section = page.locator("#tokens + p + .fig-group")
    figure = section.locator(".fig.tokens svg.plot.heatmap")
    assert figure.count() == 1 and figure.first.is_visible() and figure.first.bounding_box()["width"] > 300
    topk = next(r for r in record_documents(real_run)
                if r["method"]["id"] == "topk-keep_rate=0.5" and r["task"]["corruption"] is None)
    rows, columns = topk["macs"]["grid"]
    spans = len({min(29, int(30 * (t + 0.5) / columns)) * 10 // 30 for t in range(columns)})  # spans holding a column
    assert figure.first.locator("g.cells rect").count() == 2 * rows * spans
    assert "white@0dB" in figure.first.text_content() and "clean" in figure.first.text_content()
    from prunebench.analysis.robustness import common_ids, selection_jaccard
    from prunebench.records.record import load_results

    found = {(r.method.id, r.corruption_id): r for r in load_results(real_run)}
    clean, noisy = found[("topk-keep_rate=0.5", None)], found[("topk-keep_rate=0.5", "white@0dB")]
    jaccard = selection_jaccard(clean, noisy, common_ids([clean, noisy]))
    assert f"topk keep 0.5 (J {jaccard:.2f})" in figure.first.text_content()
    assert problems == []


def test_the_equal_speed_figure_and_table_on_screen(browser, handmade_page):
    """The central figure: clean score and flip effect against measured speedup, one line per
    method, and the iso-speed table; drawn, visible, and saved as a screenshot."""
    page, problems = open_page(browser, handmade_page)
    section = page.locator("#speed + p + .fig-group").first
    figures = section.locator(".fig.speed svg")
    assert figures.count() == 2 and figures.first.is_visible()
    assert section.locator(".fig.speed svg path.series").count() >= 1  # topk's line through its keep rates
    rows = section.locator("table.iso-speed tbody tr")
    assert rows.count() == 1 and rows.first.locator("td").first.inner_text() == "topk"
    at_15 = rows.first.locator("td").nth(2).inner_text()  # topk measured at 1.3x and 1.7x: 1.5x interpolated
    assert at_15.startswith("keep ~0.6") and "%" in at_15
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    section.screenshot(path=str(ARTIFACTS / "leaderboard-equal-speed.png"))
    assert not problems, problems


@pytest.fixture(scope="module")
def board_page(tmp_path_factory):
    """A results store with a published entry (none, topk 0.7 and 0.5) and an open submission
    whose method has a hostile name; rendered as the published board."""
    from prunebench.leaderboard.board import render_board
    from prunebench.records.entries import Entry, MethodSource

    store = tmp_path_factory.mktemp("board") / "store"
    system = {"cpu": "Test CPU", "threads": 2, "torch": "2.x", "device": "cpu", "dtype": "float32"}
    published = store / "smoke" / "published"
    write_records(published / "records", [reidentified(r) for r in sweep()])
    (published / "sources").mkdir()
    for name in ("none", "topk"):
        (published / "sources" / f"{name}.py").write_text(f"# the source of {name}\n")
    Entry("smoke", 1, 1, "closed", "published", [MethodSource(n, f"sources/{n}.py", n * 8) for n in ("none", "topk")],
          system).write(published)
    submission = store / "smoke" / "evil-1234"
    records = [r for r in sweep() if r["method"]["name"] == "none" or r["method"]["params"].get("keep_rate") == 0.5]
    for r in records:
        if r["method"]["name"] == "topk":
            r["method"]["name"], r["method"]["id"] = EVIL, EVIL + "-keep_rate=0.5"
    write_records(submission / "records", [reidentified(r) for r in records])
    (submission / "sources").mkdir()
    (submission / "sources" / "evil.py").write_text("# <script>alert('source')</script>\n")
    Entry("smoke", 1, 1, "open", "submission", [MethodSource(EVIL, "sources/evil.py", "ab" * 32)], system).write(submission)
    return render_board(store, tmp_path_factory.mktemp("board-page") / "board.html")


def test_the_published_board_on_screen(browser, board_page):
    """One row per method configuration, the submission's marked open; sortable; the effective
    robustness is a dash where the records hold no testbed; a source link opens the source."""
    page, problems = open_page(browser, board_page)
    table = "board-smoke"
    assert visible_rows(page, table).count() == 4  # none, topk 0.7, topk 0.5, the submission (not its none)
    divisions = page.locator(f"#{table} tbody td:nth-child(9)").all_inner_texts()
    assert sorted(divisions) == ["closed", "closed", "closed", "open"]
    assert set(page.locator(f"#{table} tbody td:nth-child(5)").all_inner_texts()) == {"\u2014"}
    page.locator(f"#{table} th[data-key='speedup'] button").click()
    speeds = column_values(page, table, "speedup")
    assert speeds == sorted(speeds, reverse=True) and speeds[0] == pytest.approx(1.7)
    page.locator(f"#{table} th[data-key='flip'] button").click()  # lower is better: the smallest effect first
    flips = [v for v in column_values(page, table, "flip") if isinstance(v, (int, float))]
    assert flips == sorted(flips) and len(flips) == 4 and flips[0] == 0  # none: the reference
    link = page.locator(f"#{table} tbody tr", has_text="open").locator("a")
    link.click()
    source = page.locator("details[open] pre.source")
    assert source.inner_text().strip() == "# <script>alert('source')</script>"  # shown as text, never run
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "published-board.png"), full_page=True)
    assert problems == []
