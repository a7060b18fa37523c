// Headless Chromium (Debian's, driven by playwright-core) showing code-server's workbench.
import { chromium } from 'playwright-core';
import { chromiumPath } from './code-server.mjs';
import { isRunning, log, sleep } from './processes.mjs';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export const VIEWPORT = { width: 1600, height: 1000 };

/** Runs `promise` but gives up after `ms` (the browser must never hang the runner). */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms); }),
  ]);
}

/**
 * Launches Chromium as a browser server (so its PID is known and it can always be killed) and
 * opens one page. Returns { browser, page, pid, close() }.
 */
export async function launchChromium() {
  const server = await chromium.launchServer({
    executablePath: chromiumPath(),
    args: CHROMIUM_ARGS,
    headless: true,
    host: '127.0.0.1',
  });
  const pid = server.process().pid;
  log(`started Chromium (pid ${pid})`);
  const browser = await chromium.connect(server.wsEndpoint());
  const page = await browser.newPage({ viewport: VIEWPORT });
  const close = async () => {
    await withTimeout(browser.close(), 10_000, 'closing the browser').catch(() => {});
    await withTimeout(server.close(), 10_000, 'stopping Chromium').catch(() => {});
    for (let i = 0; i < 50 && isRunning(pid); i++) await sleep(100);
    if (isRunning(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
  };
  return { browser, page, pid, close };
}
