// Paths shared by the unit tests: the copied reference fixtures and the bundled worker.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** The repository root (the folder holding package.json), found from the compiled test's location. */
export const repoRoot = (() => {
  let dir = __dirname;
  // tsc copies package.json and imported JSON fixtures into out/; only the root has tsconfig.json.
  while (!fs.existsSync(path.join(dir, 'package.json')) || !fs.existsSync(path.join(dir, 'tsconfig.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('The repository root (package.json beside tsconfig.json) was not found above ' + __dirname);
    dir = up;
  }
  return dir;
})();

export function fixture(...parts: string[]): string {
  return path.join(repoRoot, 'test', 'fixtures', ...parts);
}

/** dist/worker.js: `npm test` builds it before the unit tests run. */
export const workerScript = path.join(repoRoot, 'dist', 'worker.js');

/** A fresh temporary folder, removed by the caller with fs.rmSync(dir, { recursive: true }). */
export function tempDir(prefix = 'graft-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}
