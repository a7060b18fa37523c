// Typed client of the runner's probe (scripts/lib/probe-server.mjs). The suites run inside the
// extension host, which cannot see rendered DOM; the probe asks the browser showing the workbench.
// Only the code-server host has a browser the runner drives, so only it provides a probe.

/** The webviews of Graft: each sets <body data-view="...">. 'workbench' means the page itself. */
export type ProbeView = 'inspector' | 'lineage' | 'compare' | 'merge' | 'connectivity' | 'workbench';

export interface ElementsSnapshot {
  /** Elements matching the selector when the probe answered. */
  count: number;
  /** innerText (textContent for SVG) of the first 50 matches, trimmed. */
  texts: string[];
  /** The requested attribute of the first 50 matches (empty when none was requested). */
  attributes: (string | null)[];
  /** Whether each of the first 50 matches is rendered (not display:none, visibility:hidden or transparent). */
  visible: boolean[];
  /** Whether a frame of that view existed at all. */
  frameFound: boolean;
  /** The data-view of every Graft webview frame open at the time. */
  views: string[];
  /** True when the wait ended without reaching minCount. */
  timedOut: boolean;
}

export interface QueryOptions {
  /** Also return this attribute of each match. */
  attribute?: string;
  /** Wait until at least this many elements match (default 1). */
  minCount?: number;
  /** How long to wait (default 10 000, at most 60 000). */
  timeoutMs?: number;
}

export interface ClickOptions {
  button?: 'left' | 'right' | 'middle';
  clickCount?: number;
  modifiers?: ('Alt' | 'Control' | 'Meta' | 'Shift')[];
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Slack over the server-side wait for the HTTP round trip itself. */
const TRANSPORT_SLACK_MS = 15_000;

export class ProbeClient {
  constructor(readonly baseUrl: string) {}

  /** Waits until a webview of `view` has >= minCount elements matching `selector`; then what it saw. */
  query(view: ProbeView, selector: string, options: QueryOptions = {}): Promise<ElementsSnapshot> {
    return this.post<ElementsSnapshot>('/query', { view, selector, ...options }, options.timeoutMs);
  }

  /** Like query, on the workbench page (e.g. '.part.activitybar .action-item', '.monaco-list-row'). */
  workbench(selector: string, options: QueryOptions = {}): Promise<ElementsSnapshot> {
    return this.post<ElementsSnapshot>('/workbench', { selector, ...options }, options.timeoutMs);
  }

  /**
   * Evaluates a JavaScript expression in the view's frame and returns its JSON value (a promise
   * is awaited). The expression must be self-contained: it runs in the browser.
   */
  async evaluate<T = unknown>(view: ProbeView, expression: string, options: { timeoutMs?: number } = {}): Promise<T> {
    const answer = await this.post<{ value: T }>('/evaluate', { view, expression, ...options }, options.timeoutMs);
    return answer.value;
  }

  /** A real (trusted) mouse click on the first element matching `selector`. */
  async click(view: ProbeView, selector: string, options: ClickOptions = {}): Promise<void> {
    await this.post('/click', { view, selector, ...options }, options.timeoutMs);
  }

  /** A real pointer drag of the first element matching `selector` by (dx, dy) pixels. */
  async drag(view: ProbeView, selector: string, offset: { dx?: number; dy?: number }, options: { timeoutMs?: number } = {}): Promise<void> {
    await this.post('/drag', { view, selector, ...offset, ...options }, options.timeoutMs);
  }

  /** Presses a key (playwright names: 'Enter', 'ArrowDown', 'Control+Shift+P') in the focused element. */
  async press(key: string): Promise<void> {
    await this.post('/press', { key });
  }

  /** Types text into the focused element. */
  async type(text: string): Promise<void> {
    await this.post('/type', { text });
  }

  /** Saves test-results/<name>.png (the whole page) and returns its path. */
  async screenshot(name: string): Promise<string> {
    return (await this.post<{ path: string }>('/screenshot', { name }, 20_000)).path;
  }

  /** Tells the runner the suite is done; it takes the final screenshot while the host is still up. */
  async finish(): Promise<string> {
    return (await this.post<{ path: string }>('/finish', {}, 20_000)).path;
  }

  private async post<T>(endpoint: string, body: object, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.baseUrl + endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs + TRANSPORT_SLACK_MS),
      });
    } catch (error) {
      throw new Error(`probe ${endpoint} at ${this.baseUrl} did not answer: ${(error as Error).message}`);
    }
    const text = await response.text();
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      throw new Error(`probe ${endpoint} answered HTTP ${response.status} with non-JSON: ${text.slice(0, 200)}`);
    }
    if (!response.ok) {
      const message = (payload as { error?: string }).error ?? text.slice(0, 200);
      throw new Error(`probe ${endpoint} (HTTP ${response.status}): ${message}`);
    }
    return payload as T;
  }
}

/** Which host runs the suite, as the runner told it (GRAFT_TEST_HOST). */
export function testHost(): 'electron' | 'code-server' | undefined {
  const host = process.env.GRAFT_TEST_HOST;
  return host === 'electron' || host === 'code-server' ? host : undefined;
}

/** The probe, when the runner provides one (GRAFT_TEST_PROBE). */
export function probeClient(): ProbeClient | undefined {
  const url = process.env.GRAFT_TEST_PROBE;
  return url ? new ProbeClient(url) : undefined;
}

/** Tests skipped for want of a probe, with the reason; the results file reports them. */
export const skipReasons: { title: string; reason: string }[] = [];

/**
 * The probe for a test or hook that inspects rendered DOM. Under the electron host, where no
 * probe exists, the test is skipped and the reason printed and reported. Anywhere else a missing
 * probe is a broken runner, so it fails.
 */
export function requireProbe(context: Mocha.Context): ProbeClient {
  const probe = probeClient();
  if (probe) return probe;
  if (testHost() !== 'electron') {
    throw new Error(`GRAFT_TEST_PROBE is not set under the ${testHost() ?? 'unknown'} host; ` +
      'run the suite through scripts/test-integration.mjs, which starts the probe.');
  }
  // In a test, context.test is that test; in a hook it is the hook: name the test it precedes
  // (beforeEach) or the suite it skips (before).
  const runnable = context.test;
  const isHook = (runnable as { type?: string } | undefined)?.type === 'hook';
  const title = (isHook ? context.currentTest?.fullTitle() ?? runnable?.parent?.fullTitle() : runnable?.fullTitle()) ?? '(unknown)';
  const reason = 'webview DOM checks need the probe, which only the code-server host provides (GRAFT_TEST_PROBE is unset under electron)';
  skipReasons.push({ title, reason });
  console.warn(`[graft] skipped "${title}": ${reason}`);
  context.skip();
}
