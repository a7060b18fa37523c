// Runs the integration suites (test/integration, compiled to out/test/integration) inside a real
// VS Code extension host, with the extension loaded from this repository.
//
// Host (GRAFT_TEST_HOST): 'electron' = desktop VS Code via @vscode/test-electron (downloads a
// build; needs a display), 'code-server' = VS Code's server from npm shown in headless Chromium
// (works offline with Debian's chromium and ripgrep), 'auto' (default) = electron when a display
// exists, else code-server. Other knobs: GRAFT_TOOLS_DIR (where code-server is installed),
// GRAFT_CHROMIUM, GRAFT_TEST_TIMEOUT_S (default 900), GRAFT_TEST_KEEP=1 (keep the temp folder),
// GRAFT_TEST_EXTENSION_PATH (load another extension folder; only for working on this runner),
// GRAFT_TEST_GREP (run only the tests whose full title matches). A second pass opens a fresh
// workspace untrusted (Restricted Mode) and runs the suites of test/integration/restricted.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium } from './lib/chromium.cjs';
import { ensureCodeServer, startCodeServer, workbenchUrl } from './lib/code-server.mjs';
import { startProbeServer, takeScreenshot } from './lib/probe-server.mjs';
import { findFiles, log, sleep, tailFile } from './lib/processes.mjs';
import { createTestWorkspace } from './lib/test-workspace.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = path.join(repoRoot, 'test-results');
/** Copy of the last run's results for people to read; the run itself writes into its temp folder. */
const resultsCopy = path.join(resultsDir, 'integration-results.json');
const testsEntry = path.join(repoRoot, 'out', 'test', 'integration', 'index.js');
const extensionPath = process.env.GRAFT_TEST_EXTENSION_PATH ? path.resolve(process.env.GRAFT_TEST_EXTENSION_PATH) : repoRoot;
const overallTimeoutMs = Number(process.env.GRAFT_TEST_TIMEOUT_S || 900) * 1000;
/** How long the host may take to call run() before we call the start failed. */
const startTimeoutMs = 180_000;
/** The browser window showing the workbench; screenshots are this size. */
const VIEWPORT = { width: 1600, height: 1000 };

function chooseHost() {
  const requested = (process.env.GRAFT_TEST_HOST || 'auto').toLowerCase();
  if (requested === 'electron' || requested === 'code-server') return requested;
  if (requested !== 'auto') throw new Error(`GRAFT_TEST_HOST must be electron, code-server or auto, not "${requested}"`);
  const hasDisplay = process.platform === 'darwin' || process.platform === 'win32' || Boolean(process.env.DISPLAY);
  return hasDisplay ? 'electron' : 'code-server';
}

function checkBuilt() {
  const main = JSON.parse(fs.readFileSync(path.join(extensionPath, 'package.json'), 'utf8')).main;
  const missing = [];
  if (main && !fs.existsSync(path.join(extensionPath, main))) missing.push(`${main} (run: npm run build)`);
  if (!fs.existsSync(testsEntry)) missing.push(`${path.relative(repoRoot, testsEntry)} (run: npx tsc -p .)`);
  if (missing.length) throw new Error(`Build first; missing: ${missing.join(', ')}`);
}

let resultsFile;
/** Set by SIGINT/SIGTERM; the wait loop sees it and the normal cleanup path runs. */
let interrupted;

function readResults() {
  try {
    return JSON.parse(fs.readFileSync(resultsFile, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Environment the extension host needs to see (the suites read it). */
function suiteEnv(host, layout, probeUrl, restricted = false) {
  return {
    GRAFT_TEST_HOST: host,
    ...(restricted ? { GRAFT_TEST_RESTRICTED: '1' } : {}),
    GRAFT_TEST_RESULTS: resultsFile,
    GRAFT_TEST_WORKSPACE: layout.workspace,
    GRAFT_TEST_LAYOUT: layout.layoutFile,
    GRAFT_TEST_EXTENSION_ROOT: extensionPath,
    ...(process.env.GRAFT_TEST_GREP ? { GRAFT_TEST_GREP: process.env.GRAFT_TEST_GREP } : {}),
    ...(probeUrl ? { GRAFT_TEST_PROBE: probeUrl } : {}),
  };
}

/** Polls the results file until the suite is done, the start or overall deadline passes, or `aborted()`. */
async function waitForResults({ aborted }) {
  const started = Date.now();
  let running = false;
  for (;;) {
    const results = readResults();
    if (results?.state === 'done') return results;
    if (results?.state === 'running' && !running) {
      running = true;
      log(`the extension host started the suites after ${((Date.now() - started) / 1000).toFixed(1)} s`);
    }
    const reason = interrupted ? `interrupted by ${interrupted}` : aborted();
    if (reason) {
      // The host may have finished just after the read above.
      const late = readResults();
      if (late?.state === 'done' && !interrupted) return late;
      throw new Error(reason);
    }
    if (!running && Date.now() - started > startTimeoutMs) {
      throw new Error(`the extension host did not start the suites within ${startTimeoutMs / 1000} s ` +
        '(the extension or out/test/integration/index.js may have failed to load; see the logs below)');
    }
    if (Date.now() - started > overallTimeoutMs) {
      throw new Error(`the suites did not finish within ${overallTimeoutMs / 1000} s (GRAFT_TEST_TIMEOUT_S)`);
    }
    await sleep(500);
  }
}

/** Settings of the Restricted Mode pass: workspace trust on, no prompt, so the folder opens untrusted. */
const RESTRICTED_SETTINGS = {
  'security.workspace.trust.enabled': true,
  'security.workspace.trust.startupPrompt': 'never',
  'security.workspace.trust.banner': 'never',
  'security.workspace.trust.emptyWindow': false,
};

async function runWithCodeServer(layout, tempRoot, cleanups, { restricted = false } = {}) {
  const binary = ensureCodeServer();
  const { page, pid: chromiumPid, close: closeBrowser } = await launchChromium({ viewport: VIEWPORT });
  log(`started Chromium (pid ${chromiumPid})`);
  cleanups.push(closeBrowser);

  const graftConsoleErrors = [];
  const noteBrowserError = (text) => {
    if (!/graft/i.test(text)) return; // the workbench logs unrelated errors (no gallery offline)
    graftConsoleErrors.push(text);
    log(`browser console error: ${text.split('\n')[0].slice(0, 500)}`);
  };
  page.on('console', (message) => {
    if (message.type() === 'error') return noteBrowserError(message.text());
    // The extension host's console reaches the page as "%c INFO color: #33f <text>"; show the
    // suite's own progress lines (index.ts prefixes them with [graft]) as they come.
    const text = message.text().replace(/^%c\s*\w+\s+color:\s*#\w+\s+/, '');
    if (text.startsWith('[graft] ')) console.log(`  [host] ${text.slice('[graft] '.length)}`);
  });
  page.on('pageerror', (error) => noteBrowserError(`${error.message}\n${error.stack ?? ''}`));

  let finalScreenshot;
  const probe = await startProbeServer({ page, resultsDir, finalName: restricted ? 'final-restricted' : 'final', onFinish: (file) => { finalScreenshot = file; } });
  cleanups.push(probe.close);
  log(`probe listening on ${probe.url}`);

  const codeServerLog = path.join(tempRoot, 'code-server.log');
  const server = await startCodeServer({
    binary,
    folder: layout.workspace,
    stateDir: path.join(tempRoot, 'code-server'),
    env: suiteEnv('code-server', layout, probe.url, restricted),
    workspaceTrust: restricted,
    userSettings: {
      ...(restricted ? RESTRICTED_SETTINGS : {}),
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'telemetry.telemetryLevel': 'off',
      'update.mode': 'none',
    },
    logFile: codeServerLog,
  });
  let serverExited = false;
  server.child.on('exit', () => { serverExited = true; });
  cleanups.push(server.stop);

  const url = workbenchUrl({ port: server.port, folder: layout.workspace, extensionDevelopmentPath: extensionPath, extensionTestsPath: testsEntry });
  log(`opening the workbench: http://127.0.0.1:${server.port}/?folder=${layout.workspace}`);
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 60_000 });

  const diagnostics = () => {
    const logsDir = path.join(server.userDataDir, 'logs');
    const sections = [];
    for (const file of findFiles(logsDir, /exthost.*\.log$|remoteagent\.log$|Graft.*\.log$/i)) {
      const tail = tailFile(file, 60);
      if (tail.trim()) sections.push(`--- ${path.relative(server.userDataDir, file)} (last lines) ---\n${tail}`);
    }
    const serverTail = tailFile(codeServerLog, 40);
    if (serverTail.trim()) sections.push(`--- code-server output (last lines) ---\n${serverTail}`);
    return sections.join('\n');
  };

  let results;
  try {
    results = await waitForResults({
      aborted: () => {
        if (serverExited) return 'code-server exited while the suites ran';
        if (page.isClosed()) return 'the browser page closed';
        // A crashed extension host is not restarted with the tests: fail now, not at the timeout.
        const exit = /Extension Host Process exited with code: (\w+), signal: (\w+)/.exec(tailFile(codeServerLog, 200));
        return exit ? `the extension host exited (code ${exit[1]}, signal ${exit[2]}) before the suites finished` : undefined;
      },
    });
  } catch (error) {
    await takeScreenshot(page, resultsDir, restricted ? 'final-restricted' : 'final').then((file) => log(`screenshot at failure: ${file}`), () => {});
    error.diagnostics = diagnostics();
    throw error;
  }
  if (!finalScreenshot) {
    finalScreenshot = await takeScreenshot(page, resultsDir, restricted ? 'final-restricted' : 'final').catch((error) => log(`final screenshot failed: ${error.message}`));
  }
  if (finalScreenshot) log(`final screenshot: ${path.relative(repoRoot, finalScreenshot)}`);
  log(`probe calls served: ${probe.stats.requests}`);
  if (graftConsoleErrors.length) log(`${graftConsoleErrors.length} browser console error(s) mention Graft (printed above)`);
  if (results.failed > 0) console.log(diagnostics());
  return results;
}

async function runWithElectron(layout, tempRoot, { restricted = false } = {}) {
  const { runTests } = await import('@vscode/test-electron');
  const userData = path.join(tempRoot, restricted ? 'user-data-restricted' : 'user-data');
  if (restricted) {
    fs.mkdirSync(path.join(userData, 'User'), { recursive: true });
    fs.writeFileSync(path.join(userData, 'User', 'settings.json'), JSON.stringify(RESTRICTED_SETTINGS, null, 2));
  }
  try {
    await runTests({
      version: process.env.GRAFT_VSCODE_VERSION || 'stable',
      extensionDevelopmentPath: extensionPath,
      extensionTestsPath: testsEntry,
      extensionTestsEnv: suiteEnv('electron', layout, undefined, restricted),
      launchArgs: [
        layout.workspace,
        '--disable-extensions',
        ...(restricted ? [] : ['--disable-workspace-trust']),
        `--user-data-dir=${userData}`,
      ],
    });
  } catch (error) {
    // A failing suite makes VS Code exit non-zero; the results file says what failed.
    const results = readResults();
    if (results?.state === 'done') return results;
    throw new Error(`${error.message} (the electron host downloads VS Code on first use; without that network ` +
      'access or a display, run with GRAFT_TEST_HOST=code-server)');
  }
  const results = readResults();
  if (results?.state !== 'done') throw new Error(`VS Code exited without writing ${resultsFile}`);
  return results;
}

/** The outcome; each test's line was already printed live by the host (index.ts). */
function report(results) {
  for (const skipped of results.skipped ?? []) console.log(`  skipped: ${skipped.title}: ${skipped.reason}`);
  for (const failure of results.failures) {
    console.log(`\nFAILED: ${failure.title}\n  ${failure.message}`);
    const frames = (failure.stack ?? '').split('\n').map((line) => line.trim()).filter((line) => line.startsWith('at '));
    if (frames.length) console.log(frames.map((line) => `    ${line}`).join('\n'));
  }
  console.log(`\nIntegration tests ran inside VS Code ${results.vscodeVersion} (${results.host})`);
  const skipped = results.pending ? `, ${results.pending} skipped` : '';
  console.log(`${results.passed} passed, ${results.failed} failed${skipped}`);
}

async function main() {
  const host = chooseHost();
  checkBuilt();
  fs.mkdirSync(resultsDir, { recursive: true });
  // Screenshots of an earlier run would mislead whoever looks at this folder.
  for (const name of fs.readdirSync(resultsDir)) {
    if (name.endsWith('.png') || name === path.basename(resultsCopy)) fs.rmSync(path.join(resultsDir, name), { force: true });
  }
  const tempRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-it-'));
  resultsFile = path.join(tempRoot, 'results.json');
  const cleanups = [];
  const onSignal = (signal) => {
    if (interrupted) {
      log(`${signal} again: exiting without cleanup (temp folder ${tempRoot})`);
      process.exit(130);
    }
    interrupted = signal;
    log(`${signal}: stopping (again to force)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let exitCode = 1;
  try {
    log(`host: ${host}; extension: ${extensionPath}`);
    const layout = createTestWorkspace(repoRoot, tempRoot);
    log(`test workspace: ${layout.workspace}`);
    const started = Date.now();
    const results = host === 'electron' ? await runWithElectron(layout, tempRoot) : await runWithCodeServer(layout, tempRoot, cleanups);
    log(`suites took ${((Date.now() - started) / 1000).toFixed(1)} s`);
    // Second pass: a fresh workspace opened untrusted (Restricted Mode), for the suites under
    // test/integration/restricted. Its results are added to the first pass's.
    while (cleanups.length) await Promise.resolve().then(cleanups.pop()).catch(() => {});
    const restrictedRoot = path.join(tempRoot, 'restricted');
    fs.mkdirSync(restrictedRoot, { recursive: true });
    const restrictedLayout = createTestWorkspace(repoRoot, restrictedRoot);
    resultsFile = path.join(restrictedRoot, 'results.json');
    log(`Restricted Mode pass: ${restrictedLayout.workspace}`);
    const restricted = host === 'electron' ? await runWithElectron(restrictedLayout, restrictedRoot, { restricted: true }) : await runWithCodeServer(restrictedLayout, restrictedRoot, cleanups, { restricted: true });
    for (const key of ['passed', 'failed', 'pending']) results[key] += restricted[key];
    for (const key of ['failures', 'skipped', 'tests']) results[key] = [...(results[key] ?? []), ...(restricted[key] ?? [])];
    fs.writeFileSync(path.join(tempRoot, 'results.json'), JSON.stringify(results, null, 2));
    resultsFile = path.join(tempRoot, 'results.json');
    fs.copyFileSync(resultsFile, resultsCopy);
    report(results);
    const ran = results.passed + results.failed + results.pending;
    if (ran === 0) console.log('No test ran: that is a failure (are the suites compiled into out/test/integration/suite?).');
    exitCode = results.failed === 0 && ran > 0 ? 0 : 1;
  } catch (error) {
    console.error(`\nIntegration tests could not complete: ${error.message}`);
    if (error.diagnostics && !interrupted) console.error(error.diagnostics);
    console.log('0 passed, 1 failed');
    exitCode = interrupted ? 130 : 1;
  } finally {
    // Last in, first out: code-server, then the probe, then the browser.
    while (cleanups.length) await Promise.resolve().then(cleanups.pop()).catch(() => {});
    if (process.env.GRAFT_TEST_KEEP === '1') log(`kept ${tempRoot}`);
    else fs.rmSync(tempRoot, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
  process.exit(exitCode);
}

await main();
