// Headless Chromium (Debian's, driven by playwright-core) for the integration-test runner and the
// webview benchmarks. CommonJS so that both the ES-module scripts and the compiled CommonJS
// benchmarks can load the one copy.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** The Chromium to drive: GRAFT_CHROMIUM, else chromium (or chromium-browser) on PATH. */
function chromiumPath() {
  const found =
    process.env.GRAFT_CHROMIUM ||
    (process.env.PATH ?? '')
      .split(path.delimiter)
      .filter(Boolean)
      .flatMap((dir) => ['chromium', 'chromium-browser'].map((name) => path.join(dir, name)))
      .find(isExecutableFile);
  if (!found || !fs.existsSync(found)) {
    throw new Error(
      'Chromium was not found (looked for GRAFT_CHROMIUM, then chromium on PATH). ' +
        'On Debian/Ubuntu: apt-get update && apt-get install -y --no-install-recommends chromium',
    );
  }
  return found;
}

function isExecutableFile(file) {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Runs `promise` but gives up after `ms`: the browser must never hang its caller. */
function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

/**
 * Launches Chromium as a browser server (so its PID is known and it can always be stopped) and
 * opens one page. Resolves to { browser, page, pid, close() }; close() never throws.
 */
async function launchChromium({ viewport, deviceScaleFactor = 1 }) {
  const server = await chromium.launchServer({ executablePath: chromiumPath(), args: CHROMIUM_ARGS, headless: true, host: '127.0.0.1' });
  const pid = server.process().pid;
  const stopServer = async () => {
    await withTimeout(server.close(), 10_000, 'stopping Chromium').catch(() => {});
    for (let i = 0; i < 50 && pid !== undefined && isRunning(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100));
    if (pid !== undefined && isRunning(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
  };
  try {
    const browser = await chromium.connect(server.wsEndpoint());
    const page = await browser.newPage({ viewport, deviceScaleFactor });
    const close = async () => {
      await withTimeout(browser.close(), 10_000, 'closing the browser').catch(() => {});
      await stopServer();
    };
    return { browser, page, pid, close };
  } catch (error) {
    await stopServer();
    throw error;
  }
}

module.exports = { chromiumPath, launchChromium, withTimeout };
