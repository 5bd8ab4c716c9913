"""Helpers of the browser tests (Playwright driving Debian's headless chromium): opening the
studio's page, reading what its uPlot charts plot, the NaN warnings of three.js in its console,
where screenshots go."""

from __future__ import annotations

from pathlib import Path

from waits import eventually, scaled

from studio.bench.browser import VIEWPORT

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
TIMEOUT_S = 30.0


# three.js warns "computeBoundingSphere(): Computed radius is NaN" with the geometry as its second
# argument; this names the geometry in the message so that a test can tell which one it was.
_NAME_NAN_GEOMETRY = """(() => {
    const error = console.error;
    console.error = (...args) => {
        const g = args[1];
        if (String(args[0]).includes('NaN') && g && g.attributes && g.attributes.position) {
            const p = g.attributes.position;
            args = [`${args[0]} [geometry ${g.type}, position itemSize ${p.itemSize} count ${p.count}]`];
        }
        error(...args);
    };
})()"""

# viser's Gaussian splats draw one instanced quad whose "position" is 2-D (itemSize 2): three.js
# computes its bounding sphere with z undefined and warns on every page that shows splats. It
# is the client's own geometry, not a value the studio sent, and it is still drawn.
VISER_SPLAT_QUAD = "[geometry InstancedBufferGeometry, position itemSize 2 count 4]"


def open_page(browser, running, *, viewport: dict | None = None, console: list | None = None):
    """A new tab on the running studio, once it connected: (page, its viser ClientHandle).
    ``console``: a list that receives the page's console messages and uncaught errors (NaN
    warnings of three.js name their geometry)."""
    page = browser.new_page(viewport=viewport or VIEWPORT)
    if console is not None:
        page.add_init_script(_NAME_NAN_GEOMETRY)
        page.on("console", lambda m: console.append(m.text))
        page.on("pageerror", lambda e: console.append(str(e)))
    before = set(running.server.get_clients())
    page.goto(running.url)
    page.get_by_text("Rescan workspace").wait_for(timeout=scaled(TIMEOUT_S) * 1000)
    new = eventually(lambda: (set(running.server.get_clients()) - before) or None, "the page never connected")
    return page, running.server.get_clients()[new.pop()]


def plotted(page, title: str) -> dict | None:
    """What the uPlot chart titled ``title`` plots in the page: x, y and the x scale's range
    (viser's ``window.__viserTestpoints.uplots``), None before the chart exists."""
    return page.evaluate(
        """title => {
            const charts = Object.values((window.__viserTestpoints || {}).uplots || {}).map(v => v.chart);
            const u = charts.find(c => (c.root.querySelector('.u-title') || {}).textContent === title);
            if (!u) return null;
            const [x, y] = u.data.map(a => Array.from(a));
            return {x, y, xmin: u.scales.x.min, xmax: u.scales.x.max};
        }""",
        title,
    )


def nan_warnings(console: list[str]) -> list[str]:
    """three.js's NaN warnings in ``console`` about geometry the studio sent (not viser's quad)."""
    return [m for m in console if "NaN" in m and VISER_SPLAT_QUAD not in m]


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
