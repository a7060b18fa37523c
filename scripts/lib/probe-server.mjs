// The probe: a loopback HTTP server in the test runner that lets the suites (running inside the
// extension host, which cannot see the browser) look at the workbench and at webview DOM through
// playwright. The typed client is test/integration/probe.ts; keep the two in step.
//
// Every endpoint takes a JSON body by POST and answers JSON: 200 with the result, 400 for a bad
// request (missing field, invalid selector), 404 for an unknown endpoint, 422 when the page-side
// code threw, 500 otherwise; errors are { error: message }. All waits are bounded.
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { withTimeout } from './chromium.cjs';
import { sleep } from './processes.mjs';

const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_TIMEOUT_MS = 60_000;
const MAX_BODY_BYTES = 1 << 20;
const MAX_TEXTS = 50;
/** The view name that means the workbench page itself rather than a webview. */
const WORKBENCH = 'workbench';

class RequestError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function timeoutOf(body) {
  const value = body.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  if (typeof value !== 'number' || !(value >= 0)) throw new RequestError(400, 'timeoutMs must be a number >= 0');
  return Math.min(value, MAX_TIMEOUT_MS);
}

function requireString(body, field) {
  const value = body[field];
  if (typeof value !== 'string' || value === '') throw new RequestError(400, `"${field}" must be a non-empty string`);
  return value;
}

/** Runs in the page: counts matches of `selector` and reads their text and one attribute. */
function inspectElements({ selector, attribute, maxTexts }) {
  let elements;
  try {
    elements = Array.from(document.querySelectorAll(selector));
  } catch (error) {
    return { invalidSelector: String(error && error.message ? error.message : error) };
  }
  const first = elements.slice(0, maxTexts);
  return {
    count: elements.length,
    texts: first.map((element) => (typeof element.innerText === 'string' ? element.innerText : element.textContent ?? '').trim()),
    attributes: attribute ? first.map((element) => element.getAttribute(attribute)) : [],
    visible: first.map((element) => (typeof element.checkVisibility === 'function'
      ? element.checkVisibility({ visibilityProperty: true, opacityProperty: true })
      : element.getClientRects().length > 0)),
  };
}

/** `document.body.dataset.view` of every frame that has one (webviews of Graft set it). */
async function framesByView(page) {
  const found = [];
  for (const frame of page.frames()) {
    if (frame.isDetached()) continue;
    try {
      const view = await withTimeout(
        frame.evaluate(() => (document.body && document.body.dataset ? document.body.dataset.view ?? null : null)),
        2000, 'reading a frame');
      if (view) found.push({ frame, view });
    } catch {
      // A frame navigating or going away: skip it this round.
    }
  }
  return found;
}

/** Frames to search for `view`: the main frame for 'workbench', else webview frames with that data-view. */
async function candidateFrames(page, view) {
  if (view === WORKBENCH) return { frames: [page.mainFrame()], views: [WORKBENCH] };
  const all = await framesByView(page);
  return { frames: all.filter((entry) => entry.view === view).map((entry) => entry.frame), views: [...new Set(all.map((entry) => entry.view))] };
}

/**
 * Polls until a frame of `view` has at least `minCount` elements matching `selector`, or the
 * timeout passes; then answers what it last saw (count 0 and frameFound false if no such frame).
 */
async function query(page, { view, selector, attribute, minCount = 1, timeoutMs }) {
  const deadline = Date.now() + timeoutMs;
  let best = { count: 0, texts: [], attributes: [], visible: [] };
  let frameFound = false;
  let views = [];
  for (;;) {
    const candidates = await candidateFrames(page, view);
    views = candidates.views;
    for (const frame of candidates.frames) {
      frameFound = true;
      let seen;
      try {
        seen = await withTimeout(frame.evaluate(inspectElements, { selector, attribute, maxTexts: MAX_TEXTS }), 5000, 'querying a frame');
      } catch {
        continue;
      }
      if (seen.invalidSelector) throw new RequestError(400, `invalid selector ${JSON.stringify(selector)}: ${seen.invalidSelector}`);
      if (seen.count >= best.count) best = seen;
      if (seen.count >= minCount) return { ...seen, frameFound, views, timedOut: false };
    }
    if (Date.now() >= deadline) return { ...best, frameFound, views, timedOut: true };
    await sleep(100);
  }
}

/** The first frame of `view`, waiting for it to appear. */
async function waitForFrame(page, view, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const candidates = await candidateFrames(page, view);
    if (candidates.frames.length > 0) return candidates.frames[0];
    if (Date.now() >= deadline) {
      throw new RequestError(404, `no webview with data-view="${view}" appeared within ${timeoutMs} ms ` +
        `(views open: ${candidates.views.length ? candidates.views.join(', ') : 'none'})`);
    }
    await sleep(100);
  }
}

function screenshotPath(resultsDir, name) {
  if (typeof name !== 'string' || !/^[A-Za-z0-9._-]{1,100}$/.test(name)) {
    throw new RequestError(400, '"name" must be 1-100 characters of A-Z a-z 0-9 . _ -');
  }
  return path.join(resultsDir, name.endsWith('.png') ? name : `${name}.png`);
}

export async function takeScreenshot(page, resultsDir, name) {
  const file = screenshotPath(resultsDir, name);
  fs.mkdirSync(resultsDir, { recursive: true });
  await withTimeout(page.screenshot({ path: file, fullPage: true }), 20_000, 'taking a screenshot');
  return file;
}

function makeHandlers(page, resultsDir, onFinish, finalName) {
  const pageSide = async (promise, timeoutMs, what) => {
    try {
      return await withTimeout(promise, timeoutMs, what);
    } catch (error) {
      if (error instanceof RequestError) throw error;
      throw new RequestError(422, `${what} failed: ${error.message.split('\n')[0]}`);
    }
  };
  return {
    '/query': (body) => query(page, {
      view: requireString(body, 'view'), selector: requireString(body, 'selector'),
      attribute: body.attribute, minCount: body.minCount, timeoutMs: timeoutOf(body),
    }),
    '/workbench': (body) => query(page, {
      view: WORKBENCH, selector: requireString(body, 'selector'),
      attribute: body.attribute, minCount: body.minCount, timeoutMs: timeoutOf(body),
    }),
    '/evaluate': async (body) => {
      const timeoutMs = timeoutOf(body);
      const frame = await waitForFrame(page, requireString(body, 'view'), timeoutMs);
      const value = await pageSide(frame.evaluate(requireString(body, 'expression')), timeoutMs, 'evaluating the expression');
      return { value: value === undefined ? null : value };
    },
    '/click': async (body) => {
      const timeoutMs = timeoutOf(body);
      const selector = requireString(body, 'selector');
      const frame = await waitForFrame(page, requireString(body, 'view'), timeoutMs);
      await pageSide(frame.click(selector, {
        button: body.button ?? 'left', clickCount: body.clickCount ?? 1, modifiers: body.modifiers, timeout: timeoutMs,
      }), timeoutMs + 1000, `clicking ${selector}`);
      return { clicked: true };
    },
    '/drag': async (body) => {
      // A real pointer drag: press at the element's centre, move by (dx, dy) in steps, release.
      const timeoutMs = timeoutOf(body);
      const selector = requireString(body, 'selector');
      const frame = await waitForFrame(page, requireString(body, 'view'), timeoutMs);
      const box = await pageSide(frame.locator(selector).first().boundingBox({ timeout: timeoutMs }), timeoutMs + 1000, `finding ${selector}`);
      if (!box) throw new RequestError(422, `${selector} is not visible`);
      const x = box.x + box.width / 2;
      const y = box.y + box.height / 2;
      const dx = Number(body.dx ?? 0);
      const dy = Number(body.dy ?? 0);
      await pageSide((async () => {
        await page.mouse.move(x, y);
        await page.mouse.down();
        await page.mouse.move(x + dx, y + dy, { steps: 5 });
        await page.mouse.up();
      })(), timeoutMs, `dragging ${selector}`);
      return { dragged: true };
    },
    '/press': async (body) => {
      await pageSide(page.keyboard.press(requireString(body, 'key')), timeoutOf(body), 'pressing a key');
      return { pressed: true };
    },
    '/type': async (body) => {
      await pageSide(page.keyboard.type(requireString(body, 'text')), timeoutOf(body), 'typing');
      return { typed: true };
    },
    '/screenshot': async (body) => ({ path: await takeScreenshot(page, resultsDir, body.name) }),
    '/finish': async () => {
      const file = await takeScreenshot(page, resultsDir, finalName);
      onFinish?.(file);
      return { path: file };
    },
  };
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestError(400, `request body over ${MAX_BODY_BYTES} bytes`));
        request.destroy();
      } else {
        chunks.push(chunk);
      }
    });
    request.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      if (text === '') return resolve({});
      try {
        const parsed = JSON.parse(text);
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        resolve(parsed);
      } catch (error) {
        reject(new RequestError(400, `the body must be a JSON object (${error.message})`));
      }
    });
    request.on('error', reject);
  });
}

/**
 * Serves the probe for `page` on 127.0.0.1 (a free port). Screenshots go to `resultsDir`.
 * `onFinish(file)` is called when the suite reports it is done (after the final screenshot).
 * Returns { url, close(), requests } where requests counts the calls served.
 */
export function startProbeServer({ page, resultsDir, onFinish, finalName = 'final' }) {
  const handlers = makeHandlers(page, resultsDir, onFinish, finalName);
  const stats = { requests: 0 };
  const server = http.createServer(async (request, response) => {
    const reply = (status, payload) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(payload));
    };
    try {
      if (request.method === 'GET' && request.url === '/health') return reply(200, { ok: true });
      const handler = request.method === 'POST' ? handlers[request.url] : undefined;
      if (!handler) {
        return reply(404, { error: `unknown probe endpoint ${request.method} ${request.url}; POST one of ${Object.keys(handlers).join(', ')}` });
      }
      const body = await readBody(request);
      stats.requests++;
      reply(200, await handler(body));
    } catch (error) {
      reply(error instanceof RequestError ? error.status : 500, { error: error.message });
    }
  });
  server.requestTimeout = MAX_TIMEOUT_MS + 30_000;
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      resolve({
        url: `http://127.0.0.1:${port}`,
        stats,
        close: () => new Promise((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
