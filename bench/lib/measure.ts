// Timing and memory sampling shared by the benchmarks. Worker threads live in the benchmark's
// process, so the RSS sampled here includes theirs.
import * as os from 'node:os';

export interface Measurement<T> {
  value: T;
  seconds: number;
  /**
   * CPU seconds (user + system) of the whole process meanwhile, worker and I/O threads included:
   * less sensitive than wall time to other load on a shared machine.
   */
  cpuSeconds: number;
  /** RSS when the measurement started (after a gc when --expose-gc is on). */
  startRss: number;
  /** Largest RSS seen while `fn` ran, sampled every `intervalMs`. */
  peakRss: number;
}

/** Runs `fn`, sampling RSS on a timer; a gc first (when exposed) so earlier garbage is not counted. */
export async function measure<T>(fn: () => Promise<T>, intervalMs = 5): Promise<Measurement<T>> {
  (globalThis as { gc?: () => void }).gc?.();
  const startRss = process.memoryUsage.rss();
  let peakRss = startRss;
  const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), intervalMs);
  const cpuAtStart = process.cpuUsage();
  const started = process.hrtime.bigint();
  try {
    const value = await fn();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpu = process.cpuUsage(cpuAtStart);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
    return { value, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, startRss, peakRss };
  } finally {
    clearInterval(timer);
  }
}

/** The middle value (the upper middle of an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of no values');
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)];
}

/** The value at or below which `fraction` (0..1) of the values lie: the nearest-rank percentile. */
export function percentile(values: readonly number[], fraction: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1))];
}

/** "1.234, 1.301, 1.287": the individual runs behind a median. */
export function listRuns(values: readonly number[], digits = 3): string {
  return values.map((v) => v.toFixed(digits)).join(', ');
}

/** The machine is shared: every benchmark prints how busy it was next to its figures. */
export function machineLine(): string {
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  return `cores ${os.availableParallelism()}, load average ${load} (1/5/15 min), node ${process.version}`;
}
