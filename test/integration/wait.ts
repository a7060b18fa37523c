// Waiting inside the integration suites: poll a condition instead of sleeping a fixed time, since
// CI runs on a loaded 2-core machine.
import assert from 'node:assert/strict';

/** Polls `probe` until it returns a truthy value; fails with `what` after the timeout. */
export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
