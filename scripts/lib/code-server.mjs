// code-server (VS Code's own server, from npm) as the VS Code host where no desktop VS Code can be
// downloaded: install it once into a tools folder outside the project, start it on loopback, and
// build the workbench URL that loads the extension under development.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { freePort, isRunning, log, stopProcessGroup, tailFile, waitForHttp, whichSync } from './processes.mjs';

/** The newest code-server whose postinstall accepts Node 20 (VS Code 1.100.3). */
export const CODE_SERVER_VERSION = '4.100.3';
/** The @vscode/ripgrep version code-server 4.100.3 pins, and the ripgrep build it downloads. */
const VSCODE_RIPGREP_VERSION = '1.15.11';
const RIPGREP_TAG = 'v13.0.0-10';
const RIPGREP_TARGETS = { x64: 'x86_64-unknown-linux-musl', arm64: 'aarch64-unknown-linux-musl' };

const APT_HINT = 'On Debian/Ubuntu: apt-get update && apt-get install -y --no-install-recommends libkrb5-dev ripgrep chromium';

export function toolsDir() {
  return process.env.GRAFT_TOOLS_DIR || path.join(os.homedir(), '.cache', 'graft-test-tools');
}

export function codeServerDir() {
  return path.join(toolsDir(), `code-server-${CODE_SERVER_VERSION}`);
}

function codeServerBinary() {
  return path.join(codeServerDir(), 'node_modules', '.bin', process.platform === 'win32' ? 'code-server.cmd' : 'code-server');
}

/** Written after a complete install, so a half-finished one is redone instead of used. */
function installMarker() {
  return path.join(codeServerDir(), '.graft-install-complete');
}

/** Put there by code-server's postinstall (which installs VS Code's own dependencies). */
function postinstallOutput() {
  return path.join(codeServerDir(), 'node_modules', 'code-server', 'lib', 'vscode', 'node_modules', '@vscode', 'ripgrep', 'bin', 'rg');
}

/**
 * @vscode/ripgrep's postinstall downloads rg from GitHub. It first looks in a cache folder under
 * the temp dir, so an archive made from the system's rg there makes the install work offline.
 */
function seedRipgrepCache() {
  if (process.platform !== 'linux') return;
  const target = RIPGREP_TARGETS[process.arch];
  if (!target) throw new Error(`No offline ripgrep recipe for linux/${process.arch}; supported: ${Object.keys(RIPGREP_TARGETS).join(', ')}.`);
  const rg = whichSync('rg');
  if (!rg) throw new Error(`ripgrep (rg) was not found on PATH; the code-server install needs it. ${APT_HINT}`);
  const cacheDir = path.join(os.tmpdir(), `vscode-ripgrep-cache-${VSCODE_RIPGREP_VERSION}`);
  const archive = path.join(cacheDir, `ripgrep-${RIPGREP_TAG}-${target}.tar.gz`);
  if (fs.existsSync(archive)) return;
  const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-rg-'));
  try {
    fs.copyFileSync(rg, path.join(staging, 'rg'));
    fs.chmodSync(path.join(staging, 'rg'), 0o755);
    fs.mkdirSync(cacheDir, { recursive: true });
    const tar = spawnSync('tar', ['czf', archive, '-C', staging, 'rg'], { stdio: 'inherit' });
    if (tar.status !== 0) throw new Error(`tar failed to pack ${rg} into ${archive}`);
    log(`seeded the ripgrep download cache with ${rg}: ${archive}`);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}

function checkBuildPrerequisites() {
  if (process.platform !== 'linux') return;
  // The `kerberos` native module code-server depends on compiles against MIT Kerberos headers.
  if (!whichSync('krb5-config') && !fs.existsSync('/usr/include/krb5.h')) {
    throw new Error(`The Kerberos development files (libkrb5-dev) are missing; code-server's install compiles against them. ${APT_HINT}`);
  }
}

/** Installs code-server into the tools folder unless a complete install is already there. */
export function ensureCodeServer() {
  const binary = codeServerBinary();
  if (fs.existsSync(binary) && fs.existsSync(installMarker())) {
    log(`code-server ${CODE_SERVER_VERSION} found in ${codeServerDir()}`);
    return binary;
  }
  checkBuildPrerequisites();
  seedRipgrepCache();
  fs.mkdirSync(codeServerDir(), { recursive: true });
  log(`installing code-server ${CODE_SERVER_VERSION} into ${codeServerDir()} (one time, about a minute)...`);
  const started = Date.now();
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, [
    'install', '--prefix', codeServerDir(), '--unsafe-perm', '--no-audit', '--no-fund', '--no-save',
    `code-server@${CODE_SERVER_VERSION}`,
  ], {
    stdio: 'inherit',
    // The postinstall runs `npx node-gyp`; without this it would wait for a "yes" on stdin.
    env: { ...process.env, npm_config_yes: 'true' },
  });
  if (result.status !== 0 || !fs.existsSync(binary)) {
    throw new Error(`npm install of code-server@${CODE_SERVER_VERSION} failed (exit ${result.status}). ` +
      `Check the output above; the usual causes are missing system packages. ${APT_HINT}`);
  }
  if (process.platform !== 'win32' && !fs.existsSync(postinstallOutput())) {
    throw new Error(`code-server@${CODE_SERVER_VERSION} was installed but its postinstall did not run ` +
      `(${postinstallOutput()} is missing). Allow install scripts for it (npm's ignore-scripts/allowScripts ` +
      `settings), delete ${codeServerDir()} and run again.`);
  }
  fs.writeFileSync(installMarker(), `${new Date().toISOString()}\n`);
  log(`installed code-server in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return binary;
}

/**
 * Starts code-server on 127.0.0.1 (free port unless given) and waits until it answers.
 * Everything it writes (user data, extensions, its config file, its own logs) goes under
 * `stateDir`, never into the user's home. `env` is added to code-server's environment; its
 * extension host inherits it. `userSettings` seeds User/settings.json. `workspaceTrust` keeps
 * workspace trust on (the folder then opens in Restricted Mode); by default it is disabled.
 * Returns { port, pid, userDataDir, stop() }.
 */
export async function startCodeServer({ binary, folder, stateDir, env = {}, userSettings = {}, port, logFile, inheritOutput = false, workspaceTrust = false }) {
  port ??= await freePort();
  const userDataDir = path.join(stateDir, 'user-data');
  const extensionsDir = path.join(stateDir, 'extensions');
  const configFile = path.join(stateDir, 'config.yaml');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.writeFileSync(path.join(userDataDir, 'User', 'settings.json'), JSON.stringify(userSettings, null, 2));
  // Without --config it would write ~/.config/code-server/config.yaml (with a password) on first run.
  fs.writeFileSync(configFile, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const args = [
    '--config', configFile,
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
    '--disable-telemetry',
    '--disable-update-check',
    // With workspace trust on, a folder not marked trusted opens in Restricted Mode.
    ...(workspaceTrust ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    folder,
  ];
  const out = inheritOutput ? 'inherit' : fs.openSync(logFile, 'a');
  const child = spawn(binary, args, {
    env: {
      ...process.env,
      // code-server keeps its own logs under XDG_DATA_HOME; keep them with the rest of its state.
      XDG_DATA_HOME: path.join(stateDir, 'xdg-data'),
      XDG_CONFIG_HOME: path.join(stateDir, 'xdg-config'),
      ...env,
    },
    // Its own process group, so stop() also ends the extension host and other children.
    detached: true,
    stdio: ['ignore', out, out],
  });
  if (typeof out === 'number') fs.closeSync(out);
  let exited = false;
  child.on('exit', () => { exited = true; });
  const stop = () => stopProcessGroup(child.pid);
  log(`started code-server (pid ${child.pid}) on 127.0.0.1:${port}`);
  try {
    const started = Date.now();
    await waitForHttp(`http://127.0.0.1:${port}/`, {
      statuses: [302],
      timeoutMs: 60_000,
      isAlive: () => !exited && isRunning(child.pid),
      what: 'code-server',
    });
    log(`code-server is ready after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    await stop();
    const tail = logFile ? tailFile(logFile, 40) : '';
    throw new Error(`${error.message}${tail ? `\n--- code-server output (last lines) ---\n${tail}` : ''}`);
  }
  return { port, pid: child.pid, child, userDataDir, stop };
}

/**
 * The workbench URL that opens `folder` with the extension in development mode, and runs the
 * mocha entry `extensionTestsPath` when given. Paths are absolute paths on the server.
 */
export function workbenchUrl({ port, folder, extensionDevelopmentPath, extensionTestsPath }) {
  const remote = (p) => `vscode-remote://127.0.0.1:${port}${toPosix(p)}`;
  const payload = [['extensionDevelopmentPath', remote(extensionDevelopmentPath)]];
  if (extensionTestsPath) payload.push(['extensionTestsPath', remote(extensionTestsPath)]);
  return `http://127.0.0.1:${port}/?folder=${encodeURIComponent(toPosix(folder))}` +
    `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

function toPosix(p) {
  const slashed = p.split(path.sep).join('/');
  return slashed.startsWith('/') ? slashed : `/${slashed}`;
}
