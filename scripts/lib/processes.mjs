// Small process and network helpers shared by the integration-test runner and the demo launcher.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';

export function log(message) {
  console.log(`[graft] ${message}`);
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A TCP port that was free a moment ago on 127.0.0.1 (the OS picks it by binding port 0). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The HTTP status of a GET, or undefined when nothing answers (yet). Each attempt is bounded. */
export function httpStatus(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const request = http.get(url, { timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode);
    });
    request.on('timeout', () => request.destroy());
    request.on('error', () => resolve(undefined));
  });
}

/**
 * Polls `url` until it answers with one of `statuses`. Fails early when `isAlive()` turns false
 * (the server died) and after `timeoutMs`.
 */
export async function waitForHttp(url, { statuses, timeoutMs, isAlive = () => true, what = url }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if (!isAlive()) throw new Error(`${what} exited before answering ${url}`);
    last = await httpStatus(url);
    if (last !== undefined && statuses.includes(last)) return last;
    await sleep(250);
  }
  throw new Error(`${what} did not answer ${url} with HTTP ${statuses.join('/')} within ${timeoutMs / 1000} s` +
    (last === undefined ? ' (no answer at all)' : ` (last answer: HTTP ${last})`));
}

export function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Ends a child started with `detached: true` (so it leads its own process group) together with
 * the processes it forked, e.g. code-server's extension host: SIGTERM to the group, SIGKILL after
 * `graceMs`. Only the group of the PID we started is signalled.
 */
export async function stopProcessGroup(pid, graceMs = 5000) {
  if (!pid) return;
  const signalGroup = (signal) => {
    try {
      process.kill(-pid, signal);
    } catch {
      // Already gone.
    }
  };
  signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && isRunning(-pid)) await sleep(100);
  if (isRunning(-pid)) signalGroup('SIGKILL');
}

/** The last `lines` lines of a text file ('' when it does not exist). Reads at most 256 KiB. */
export function tailFile(file, lines = 60) {
  let fd;
  try {
    fd = fs.openSync(file, 'r');
    const size = fs.fstatSync(fd).size;
    const length = Math.min(size, 256 * 1024);
    const buffer = Buffer.alloc(length);
    fs.readSync(fd, buffer, 0, length, size - length);
    return buffer.toString('utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Files under `dir` (recursive) whose base name matches `pattern`. */
export function findFiles(dir, pattern) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && pattern.test(entry.name))
    .map((entry) => path.join(entry.parentPath ?? entry.path, entry.name));
}

/** An executable found on PATH, or undefined. */
export function whichSync(command) {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, command);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}
