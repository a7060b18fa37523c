// Headless Chromium for the webview benchmarks: the integration runner's launcher
// (scripts/lib/chromium.cjs), loaded at run time because it lives outside the compiled tree.
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { repoRoot } from '../../test/unit/helpers';

export interface HeadlessChromium {
  browser: Browser;
  page: Page;
  close(): Promise<void>;
}

interface ChromiumLauncher {
  launchChromium(options: { viewport: { width: number; height: number }; deviceScaleFactor?: number }): Promise<HeadlessChromium>;
}

/** A browser server (so its PID is known and it is always stopped) with one page open. */
export function launchChromium(viewport: { width: number; height: number }): Promise<HeadlessChromium> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const launcher = require(path.join(repoRoot, 'scripts', 'lib', 'chromium.cjs')) as ChromiumLauncher;
  return launcher.launchChromium({ viewport, deviceScaleFactor: 1 });
}
