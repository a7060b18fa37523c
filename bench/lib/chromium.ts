// Headless Chromium for the webview benchmarks, driven by playwright-core. Found the way the
// integration tests find it (scripts/lib/code-server.mjs): GRAFT_CHROMIUM, else chromium on PATH;
// launched with the same switches as scripts/lib/browser.mjs (which is ESM, so not importable
// from these CommonJS benchmarks).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export function findChromium(): string {
  const candidates = process.env.GRAFT_CHROMIUM
    ? [process.env.GRAFT_CHROMIUM]
    : (process.env.PATH ?? '').split(path.delimiter).flatMap((dir) => ['chromium', 'chromium-browser'].map((name) => path.join(dir, name)));
  const found = candidates.find((file) => file && fs.existsSync(file));
  if (!found) throw new Error('Chromium was not found (looked for GRAFT_CHROMIUM, then chromium on PATH). On Debian/Ubuntu: apt-get install chromium.');
  return found;
}

export interface HeadlessChromium {
  browser: Browser;
  page: Page;
  close(): Promise<void>;
}

/** A browser server (so its PID is known and it is always stopped) with one page open. */
export async function launchChromium(viewport: { width: number; height: number }): Promise<HeadlessChromium> {
  const server = await chromium.launchServer({ executablePath: findChromium(), args: CHROMIUM_ARGS, headless: true, host: '127.0.0.1' });
  const pid = server.process().pid;
  const stop = async () => {
    await server.close().catch(() => undefined);
    if (pid !== undefined && isRunning(pid)) process.kill(pid, 'SIGKILL');
  };
  try {
    const browser = await chromium.connect(server.wsEndpoint());
    const page = await browser.newPage({ viewport, deviceScaleFactor: 1 });
    return {
      browser,
      page,
      close: async () => {
        await browser.close().catch(() => undefined);
        await stop();
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
