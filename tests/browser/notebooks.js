// Drives Debian's headless Chromium through the classic Jupyter Notebook
// (Notebook 6) with the cnnlens kernel, the way a student would: open each
// notebook, Cell > Run All, wait for the kernel to go idle, then stop a long
// cell with the toolbar's interrupt button.
//
// Usage: node notebooks.js CONFIG.json
//   CONFIG: {"url": "http://127.0.0.1:PORT", "token": "...", "out": "DIR",
//            "notebooks": ["6.4-....ipynb", ...], "interruptIn": "6.4-....ipynb",
//            "runTimeoutMs": 120000, "slow": 1}
//   slow: multiplies every wait (a kernel under valgrind runs ~100x slower)
// Writes DIR/results.json (what each notebook showed) and DIR/*.png screenshots;
// tests/py/test_browser.py starts the server and asserts on results.json.
// Exits 0 when the browser part ran to the end, even when a notebook failed:
// the assertions live in the pytest file, which can name the failing cells.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM = '/usr/bin/chromium';
// Without the background-networking flags Chromium keeps trying to reach
// Google's hosts, which this machine's closed network refuses.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
const INTERRUPT_BUTTON = 'button[data-jupyter-action="jupyter-notebook:interrupt-kernel"]';
const LONG_CELL = 'm = model fashion\nshow maximize conv2 filter 0..49 steps 5000';

// Notebook 6 scrolls inside #site, so a "full page" screenshot would hold only
// the viewport: grow the viewport to the notebook's height for the picture.
async function screenshot(page, file) {
  const size = page.viewportSize();
  const height = await page.evaluate(() => {
    const site = document.querySelector('#site');
    const header = document.querySelector('#header');
    return (site ? site.scrollHeight : 0) + (header ? header.offsetHeight : 0) + 20;
  });
  await page.setViewportSize({ width: size.width, height: Math.min(Math.max(height, size.height), 16000) });
  try {
    await page.screenshot({ path: file });
  } finally {
    await page.setViewportSize(size);
  }
}

function log(msg) {
  process.stdout.write(`[browser ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

// The notebook has loaded, its kernel is connected and idle.
async function waitKernelIdle(page, timeout) {
  await page.waitForFunction(() => {
    const nb = window.Jupyter && window.Jupyter.notebook;
    const icon = document.querySelector('#kernel_indicator_icon');
    return nb && nb._fully_loaded && nb.kernel && nb.kernel.is_connected() &&
      icon && icon.classList.contains('kernel_idle_icon');
  }, null, { timeout, polling: 100 });
}

// No code cell in [from, to) is queued or running ('*') and the kernel is idle.
// A cell the kernel aborted after an earlier error gets an empty prompt, not a
// number: the pytest file reports those as cells that never ran.
async function waitCellsDone(page, from, to, timeout) {
  await page.waitForFunction(([a, b]) => {
    const cells = window.Jupyter.notebook.get_cells();
    for (let i = a; i < Math.min(b, cells.length); i++) {
      const c = cells[i];
      if (c.cell_type === 'code' && c.input_prompt_number === '*') return false;
    }
    const icon = document.querySelector('#kernel_indicator_icon');
    return icon && icon.classList.contains('kernel_idle_icon');
  }, [from, to], { timeout, polling: 200 });
}

// What the page shows: every figure and every error, per cell.
async function collect(page) {
  return page.evaluate(() => {
    const cells = window.Jupyter.notebook.get_cells();
    const out = [];
    cells.forEach((c, index) => {
      if (c.cell_type !== 'code') return;
      const el = c.element[0];
      const imgs = [...el.querySelectorAll('.output_area img')].map((img) => ({
        png: img.src.startsWith('data:image/png;base64,'),
        srcStart: img.src.slice(0, 30),
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
      }));
      const errors = [...el.querySelectorAll('.output_error')].map((e) => e.innerText.trim());
      const text = [...el.querySelectorAll('.output_text, .output_stream')]
        .map((e) => e.innerText.trim()).join('\n');
      out.push({
        index, prompt: c.input_prompt_number ?? null, source: c.get_text(), imgs, errors,
        text: text.slice(0, 2000),
      });
    });
    return out;
  });
}

// Every wait scales with cfg.slow (CNNLENS_TEST_SLOW of the pytest run).
function ms(cfg, base) {
  return base * (cfg.slow || 1);
}

async function runNotebook(page, cfg, name) {
  const result = { name, ok: false, cells: [], error: null, seconds: null, screenshot: null };
  const t0 = Date.now();
  try {
    const url = `${cfg.url}/notebooks/${encodeURIComponent(name)}?token=${cfg.token}`;
    await page.goto(url, { waitUntil: 'load', timeout: 30000 });
    await waitKernelIdle(page, ms(cfg, 60000));
    result.imagesBeforeRun = await page.locator('.output_area img').count();
    log(`${name}: kernel idle, Cell > Run All`);
    // The real menu, as a student clicks it.
    await page.click('#celllink');
    await page.click('#run_all_cells > a');
    const ncells = await page.evaluate(() => window.Jupyter.notebook.ncells());
    // Run All marks every code cell '*' at once; make sure it did before
    // waiting for the marks to go.  A fast notebook may already be done when
    // we first look (the copies start without execution counts): that counts.
    await page.waitForFunction(() => {
      const code = window.Jupyter.notebook.get_cells().filter((c) => c.cell_type === 'code');
      return code.some((c) => c.input_prompt_number === '*') ||
        code.every((c) => typeof c.input_prompt_number === 'number');
    }, null, { timeout: ms(cfg, 5000), polling: 20 });
    await waitCellsDone(page, 0, ncells, ms(cfg, cfg.runTimeoutMs));
    // Let the browser decode the last images before measuring them.
    await page.waitForFunction(() => [...document.querySelectorAll('.output_area img')]
      .every((i) => i.complete), null, { timeout: 10000 }).catch(() => {});
    result.cells = await collect(page);
    result.ok = true;
  } catch (e) {
    result.error = String(e && e.stack || e);
    try { result.cells = await collect(page); } catch (_) { /* page gone */ }
  }
  result.seconds = (Date.now() - t0) / 1000;
  result.screenshot = path.join(cfg.out, name.replace(/\.ipynb$/, '') + '.png');
  await screenshot(page, result.screenshot).catch((e) => {
    result.screenshot = null;
    result.error = (result.error || '') + `\nscreenshot failed: ${e}`;
  });
  log(`${name}: ${result.ok ? 'ran' : 'FAILED'} in ${result.seconds.toFixed(1)} s`);
  return result;
}

// Types into the selected cell's editor and runs it with Shift+Enter, which
// selects the next cell (a new one at the bottom). Returns the cell's index.
async function typeAndRun(page, text) {
  const index = await page.evaluate(() => window.Jupyter.notebook.get_selected_index());
  await page.locator('.cell.selected .CodeMirror').click();
  await page.keyboard.type(text);
  await page.keyboard.press('Shift+Enter');
  return index;
}

async function interruptTest(page, cfg) {
  const r = { ok: false, error: null, seconds: null, cell: null, after: null, screenshot: null };
  try {
    await page.evaluate(() => {
      const nb = window.Jupyter.notebook;
      nb.insert_cell_at_bottom('code');
      nb.select(nb.ncells() - 1);
      nb.command_mode();
    });
    const longIndex = await typeAndRun(page, LONG_CELL);
    log(`interrupt: running cell ${longIndex}: ${LONG_CELL.replace('\n', '; ')}`);
    // Interrupt only once the optimisation is under way, not while it loads.
    await page.waitForFunction((i) => window.Jupyter.notebook.get_cell(i).input_prompt_number === '*' &&
      document.querySelector('#kernel_indicator_icon').classList.contains('kernel_busy_icon'),
    longIndex, { timeout: ms(cfg, 10000), polling: 50 });
    await page.waitForTimeout(2000);
    const stillRunning = await page.evaluate((i) =>
      window.Jupyter.notebook.get_cell(i).input_prompt_number === '*', longIndex);
    if (!stillRunning) throw new Error('the long cell finished within 2 s; it is not long enough to interrupt');
    const t0 = Date.now();
    await page.click(INTERRUPT_BUTTON);
    log('interrupt: clicked the toolbar\'s interrupt button');
    await waitCellsDone(page, longIndex, longIndex + 1, ms(cfg, 30000));
    r.seconds = (Date.now() - t0) / 1000;
    log(`interrupt: the cell stopped ${r.seconds.toFixed(2)} s after the click`);
    const afterIndex = await typeAndRun(page, 'print "still here"');
    await waitCellsDone(page, afterIndex, afterIndex + 1, ms(cfg, 30000));
    const cells = await collect(page);
    r.cell = cells.find((c) => c.index === longIndex);
    r.after = cells.find((c) => c.index === afterIndex);
    r.ok = true;
  } catch (e) {
    r.error = String(e && e.stack || e);
  }
  r.screenshot = path.join(cfg.out, 'interrupt.png');
  await screenshot(page, r.screenshot).catch(() => { r.screenshot = null; });
  return r;
}

async function main() {
  const cfg = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  fs.mkdirSync(cfg.out, { recursive: true });
  const results = { notebooks: [], interrupt: null, chromium: null, playwright: null };
  results.playwright = require('playwright-core/package.json').version;
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'cnnlens-chromium-'));
  const t0 = Date.now();
  // A persistent context on a new empty folder is Playwright's way of giving
  // Chromium a fresh --user-data-dir (launch() refuses that flag in args).
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 900 },
  });
  try {
    results.chromium = context.browser() ? context.browser().version() : null;
    const page = context.pages()[0] || await context.newPage();
    page.on('pageerror', (e) => log(`page error: ${e}`));
    page.on('dialog', (d) => { log(`dialog: ${d.message()}`); d.dismiss(); });
    for (const name of cfg.notebooks) {
      const r = await runNotebook(page, cfg, name);
      if (name === cfg.interruptIn) r.interrupt = await interruptTest(page, cfg);
      results.notebooks.push(r);
      // Leave the page without the "unsaved changes" prompt, and stop its kernel.
      await page.evaluate(() => {
        window.onbeforeunload = null;
        window.Jupyter.notebook.set_dirty(false);
        window.Jupyter.notebook.kernel.kill();
      }).catch(() => {});
    }
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  results.seconds = (Date.now() - t0) / 1000;
  fs.writeFileSync(path.join(cfg.out, 'results.json'), JSON.stringify(results, null, 2));
  log(`done in ${results.seconds.toFixed(1)} s; results in ${path.join(cfg.out, 'results.json')}`);
}

main().catch((e) => {
  process.stderr.write(`browser test could not run: ${e && e.stack || e}\n`);
  process.exit(2);
});
