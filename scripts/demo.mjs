// `npm run demo`: builds the extension, writes a small demo workspace to ./demo-workspace and opens
// it with the extension loaded from this repository: in desktop VS Code when `code` is on PATH,
// else in code-server (installed on first use) whose URL is printed; Ctrl-C ends it.
// GRAFT_DEMO_HOST=code-server forces code-server; GRAFT_DEMO_PORT picks its port.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureCodeServer, startCodeServer, workbenchUrl } from './lib/code-server.mjs';
import { log, tailFile, whichSync } from './lib/processes.mjs';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const demoDir = path.join(repoRoot, 'demo-workspace');
const compiledDemo = path.join(repoRoot, 'out', 'test', 'support', 'demo-workspace.js');

function run(command, args) {
  log(`$ ${command} ${args.join(' ')}`);
  return spawnSync(command, args, { cwd: repoRoot, stdio: 'inherit', shell: process.platform === 'win32' }).status;
}

function build() {
  if (run(process.execPath, ['scripts/build.mjs']) !== 0) {
    throw new Error('the build failed (errors above); fix them and run npm run demo again');
  }
  // tsc emits even when it reports type errors elsewhere in the tree; the demo only needs its module.
  if (run(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.']) !== 0) {
    if (!fs.existsSync(compiledDemo)) throw new Error(`tsc failed and ${path.relative(repoRoot, compiledDemo)} was not produced`);
    log('tsc reported errors (above); continuing with the compiled demo writer');
  }
}

async function writeDemo() {
  const { writeDemoWorkspace } = createRequire(import.meta.url)(compiledDemo);
  const started = Date.now();
  const demo = await writeDemoWorkspace(demoDir);
  log(`wrote ${demo.files.length} files to ${demo.dir} in ${Date.now() - started} ms`);
}

function openInDesktopVsCode(code) {
  log(`opening ${demoDir} in desktop VS Code with the development extension`);
  const status = spawnSync(code, ['--extensionDevelopmentPath', repoRoot, demoDir], { stdio: 'inherit', shell: process.platform === 'win32' }).status;
  process.exit(status ?? 1);
}

async function serveWithCodeServer() {
  const binary = ensureCodeServer();
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-demo-'));
  const logFile = path.join(stateDir, 'code-server.log');
  const port = process.env.GRAFT_DEMO_PORT ? Number(process.env.GRAFT_DEMO_PORT) : undefined;
  const server = await startCodeServer({
    binary, folder: demoDir, stateDir, port, logFile,
    userSettings: {
      'workbench.startupEditor': 'none',
      'telemetry.telemetryLevel': 'off',
      'update.mode': 'none',
      // demo-workspace sits inside this repository; do not offer to open the repository.
      'git.openRepositoryInParentFolders': 'never',
    },
  });
  let stopping = false;
  const stop = async (code) => {
    if (stopping) return;
    stopping = true;
    log('stopping code-server');
    await server.stop();
    fs.rmSync(stateDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    process.exit(code);
  };
  server.child.on('exit', (code) => {
    if (stopping) return;
    console.error(`code-server exited (code ${code}).\n${tailFile(logFile, 30)}`);
    stop(1);
  });
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  const url = workbenchUrl({ port: server.port, folder: demoDir, extensionDevelopmentPath: repoRoot });
  console.log(`\nGraft demo is running. Open this URL in a browser on this machine (it listens on 127.0.0.1 only;\n` +
    `from another machine forward the port, e.g. ssh -L ${server.port}:127.0.0.1:${server.port}):\n\n  ${url}\n\n` +
    `code-server log: ${logFile}\nPress Ctrl-C to stop.`);
  // Stay in the foreground until a signal or code-server's exit ends the process.
  await new Promise(() => {});
}

async function main() {
  build();
  await writeDemo();
  const code = process.env.GRAFT_DEMO_HOST === 'code-server' ? undefined : whichSync(process.platform === 'win32' ? 'code.cmd' : 'code');
  if (code) openInDesktopVsCode(code);
  else await serveWithCodeServer();
}

main().catch((error) => {
  console.error(`npm run demo failed: ${error.message}`);
  process.exit(1);
});
