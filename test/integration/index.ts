// Entry the extension host calls (extensionTestsPath): runs every compiled suite under suite/
// with mocha and reports the outcome to the runner through GRAFT_TEST_RESULTS.
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';
import * as vscode from 'vscode';
import { probeClient, skipReasons, testHost } from './probe';

export interface TestOutcome {
  title: string;
  state: 'passed' | 'failed' | 'pending';
  durationMs?: number;
}

/** What GRAFT_TEST_RESULTS holds: { state: 'running' } first, then the full record. */
export interface IntegrationResults {
  state: 'running' | 'done';
  vscodeVersion: string;
  host: string;
  passed: number;
  failed: number;
  pending: number;
  failures: { title: string; message: string; stack?: string }[];
  skipped: { title: string; reason: string }[];
  tests: TestOutcome[];
  durationMs: number;
}

const SUITE_TIMEOUT_MS = 60_000;

function suiteFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.test.js'))
    .map((name) => path.join(dir, name))
    .sort();
}

function writeResults(results: IntegrationResults): void {
  const file = process.env.GRAFT_TEST_RESULTS;
  if (!file) return;
  // Write then rename, so the polling runner never reads half a file.
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file + '.partial', JSON.stringify(results, null, 2));
  fs.renameSync(file + '.partial', file);
}

function firstLines(text: string | undefined, lines: number): string | undefined {
  return text?.split('\n').slice(0, lines).join('\n');
}

export async function run(): Promise<void> {
  const started = Date.now();
  const results: IntegrationResults = {
    state: 'running',
    vscodeVersion: vscode.version,
    host: testHost() ?? (vscode.env.uiKind === vscode.UIKind.Web ? 'code-server' : 'electron'),
    passed: 0, failed: 0, pending: 0, failures: [], skipped: [], tests: [], durationMs: 0,
  };
  writeResults(results);
  console.log(`[graft] integration tests inside VS Code ${vscode.version} (${results.host})`);

  // Progress is printed line by line below: the spec reporter's printf-style output comes out
  // unformatted when code-server forwards the host's console to the browser.
  const mocha = new Mocha({ ui: 'bdd', timeout: SUITE_TIMEOUT_MS, color: false, reporter: Mocha.reporters.Base });
  // GRAFT_TEST_GREP runs only the tests whose full title matches (for working on one suite).
  if (process.env.GRAFT_TEST_GREP) mocha.grep(process.env.GRAFT_TEST_GREP);
  // The runner's second pass opens an untrusted workspace and runs the Restricted Mode suites only.
  const files = suiteFiles(path.join(__dirname, process.env.GRAFT_TEST_RESTRICTED === '1' ? 'restricted' : 'suite'));
  for (const file of files) mocha.addFile(file);

  if (files.length === 0) {
    results.failed = 1;
    results.failures.push({
      title: 'integration suites',
      message: `no *.test.js under ${path.join(__dirname, 'suite')}: compile the tests first (npx tsc -p .)`,
    });
  } else {
    try {
      await new Promise<void>((resolve) => {
        const runner = mocha.run(() => resolve());
        runner.on('pass', (test) => {
          console.log(`[graft] ok   ${test.fullTitle()} (${test.duration} ms)`);
          results.passed++;
          results.tests.push({ title: test.fullTitle(), state: 'passed', durationMs: test.duration });
        });
        runner.on('fail', (test, error: Error) => {
          console.log(`[graft] FAIL ${test.fullTitle()}: ${error.message}`);
          results.failed++;
          results.tests.push({ title: test.fullTitle(), state: 'failed', durationMs: test.duration });
          results.failures.push({ title: test.fullTitle(), message: error.message, stack: firstLines(error.stack, 12) });
        });
        runner.on('pending', (test) => {
          console.log(`[graft] skip ${test.fullTitle()}`);
          results.pending++;
          results.tests.push({ title: test.fullTitle(), state: 'pending' });
        });
      });
    } catch (error) {
      // A suite file that throws while loading never reaches the runner's events. A SyntaxError's
      // stack starts with "<file>:<line>" instead of naming the file in a frame.
      const stack = (error as Error).stack ?? '';
      const where = /^(.+\.js:\d+)$/m.exec(stack.split('\n')[0])?.[1];
      results.failed++;
      results.failures.push({
        title: 'loading the suites',
        message: `${(error as Error).message}${where ? ` (at ${where})` : ''}`,
        stack: firstLines(stack, 12),
      });
    }
  }

  results.skipped = [...skipReasons];
  results.durationMs = Date.now() - started;
  results.state = 'done';
  console.log(`[graft] ${results.passed} passed, ${results.failed} failed, ${results.pending} skipped`);

  // The final screenshot must be taken while this host is still up; the results come after it.
  const probe = probeClient();
  if (probe) {
    await probe.finish().catch((error: Error) => console.warn(`[graft] final screenshot failed: ${error.message}`));
  }
  writeResults(results);
  if (results.failed > 0) throw new Error(`${results.failed} integration test(s) failed`);
}
