// Benchmark of tensor statistics on the worker pool.
//
// Writes one 100M-element F32 tensor (400 MB) into a temp folder, streamed through the
// safetensors writer a chunk at a time, then times:
//   read:  reading the whole tensor once with positional reads (what statistics cannot beat);
//   stats: computeTensorStats on a WorkerPool of the default size (and one thread per core),
//          first including the threads' start, then warm (median of 3);
//   hist:  the same with a 64-bin histogram (a second pass);
// each with the WebAssembly and with the JavaScript kernels, side by side.
// Files are warm in the page cache (just written). Peak RSS is sampled on the main thread every
// 5 ms; worker threads live in the same process, so it includes them. The target is < 64 MB
// above the baseline taken before the pool starts. The table is also written to
// bench-results/stats.json.
//
// Run: node scripts/build.mjs && npx tsc -p . && node --expose-gc out/bench/stats.js
// GRAFT_BENCH_ELEMENTS=<n> changes the tensor size; GRAFT_WORKER=<path> another worker bundle.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultPoolSize, WorkerPool } from '../src/core/engine/pool';
import type { KernelChoice } from '../src/core/kernels';
import { formatBytes } from '../src/core/format';
import { openCheckpoint, SafetensorsFileWriter, type TensorRef } from '../src/core/safetensors';
import { computeTensorStats, statsTasks, SUB_CHUNK_ELEMENTS } from '../src/core/stats';
import { workerScript as bundledWorker } from '../test/unit/helpers';
import { machineLine } from './lib/measure';
import { writeResults } from './lib/results';

const ELEMENTS = Number(process.env.GRAFT_BENCH_ELEMENTS ?? 100_000_000);
const WRITE_CHUNK = 1 << 22;
const REPEATS = 3;
const MB = 1e6;
const workerScript = process.env.GRAFT_WORKER ?? bundledWorker;

function fill(target: Float32Array, seed: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < target.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    target[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.08;
  }
}

async function writeTensor(file: string): Promise<void> {
  const writer = await SafetensorsFileWriter.create(file, [{ name: 'w', dtype: 'F32', shape: [ELEMENTS] }], { format: 'pt' });
  const chunk = new Float32Array(WRITE_CHUNK);
  try {
    for (let start = 0, n = 0; start < ELEMENTS; start += WRITE_CHUNK, n++) {
      const count = Math.min(WRITE_CHUNK, ELEMENTS - start);
      fill(chunk, n + 1);
      await writer.writeTensor('w', new Uint8Array(chunk.buffer, 0, count * 4), start * 4);
    }
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** Peak RSS above a baseline, sampled while `fn` runs. */
async function measure<T>(fn: () => Promise<T>): Promise<{ result: T; seconds: number; peakAboveBaseline: number }> {
  (globalThis as { gc?: () => void }).gc?.();
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 5);
  const started = performance.now();
  try {
    const result = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { result, seconds: (performance.now() - started) / 1000, peakAboveBaseline: peak - baseline };
  } finally {
    clearInterval(timer);
  }
}

async function readAll(ref: TensorRef): Promise<number> {
  const buffer = new Uint8Array(SUB_CHUNK_ELEMENTS * 4);
  const handle = await fs.promises.open(ref.file, 'r');
  let total = 0;
  try {
    for (let position = ref.begin; position < ref.end; position += buffer.length) {
      const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, ref.end - position), position);
      total += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return total;
}

async function main(): Promise<void> {
  if (!fs.existsSync(workerScript)) throw new Error(`${workerScript} is missing: run \`node scripts/build.mjs\` first.`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-stats-'));
  const rows: string[][] = [];
  const startLoad = os.loadavg();
  try {
    const file = path.join(dir, 'w.safetensors');
    const write = await measure(() => writeTensor(file));
    const ref = (await openCheckpoint(file)).tensors[0];
    const bytes = ref.end - ref.begin;
    const row = (what: string, workers: string, kernels: string, m: { seconds: number; peakAboveBaseline: number }) =>
      rows.push([what, workers, kernels, m.seconds.toFixed(2), (bytes / MB / m.seconds).toFixed(0), (ELEMENTS / 1e6 / m.seconds).toFixed(0), formatBytes(m.peakAboveBaseline)]);
    row('write (streamed)', '-', '-', write);
    await readAll(ref); // warm the page cache
    row('read only', '-', '-', await measure(() => readAll(ref)));

    const sizes = [...new Set([defaultPoolSize(), os.availableParallelism()])];
    let reference: string | undefined;
    const warmMedian = new Map<string, number>();
    for (const size of sizes) for (const kernels of ['webassembly', 'javascript'] as KernelChoice[]) {
      // The baseline is taken before the pool exists, so thread start-up counts against the peak.
      let pool: WorkerPool<typeof statsTasks> | undefined;
      try {
        const cold = await measure(() => {
          pool = new WorkerPool<typeof statsTasks>({ workerScript, size, kernels });
          return computeTensorStats(pool, ref);
        });
        row('stats, incl. thread start', String(size), kernels, cold);
        const warm = [];
        for (let i = 0; i < REPEATS; i++) warm.push(await measure(() => computeTensorStats(pool!, ref)));
        warm.sort((a, b) => a.seconds - b.seconds);
        warmMedian.set(`${size} ${kernels}`, warm[REPEATS >> 1].seconds);
        row(`stats, median of ${REPEATS}`, String(size), kernels, { seconds: warm[REPEATS >> 1].seconds, peakAboveBaseline: Math.max(...warm.map((w) => w.peakAboveBaseline)) });
        row('stats + 64-bin histogram', String(size), kernels, await measure(() => computeTensorStats(pool!, ref, { histogramBins: 64 })));
        // Both kernels give the same counts and extremes; mean and std agree to float64 reordering.
        const summary = JSON.stringify({ ...cold.result, mean: cold.result.mean?.toPrecision(12), std: cold.result.std?.toPrecision(12) });
        const same = (r: typeof cold.result) => JSON.stringify({ ...r, mean: r.mean?.toPrecision(12), std: r.std?.toPrecision(12) }) === summary;
        if (!warm.every((w) => same(w.result)) || (reference && summary !== reference)) throw new Error('statistics differ between runs, pool sizes or kernels');
        reference = summary;
      } finally {
        await pool?.dispose();
      }
    }
    console.log(`tensor: ${ELEMENTS.toLocaleString('en-US')} F32 elements (${formatBytes(bytes)}), ${os.availableParallelism()} cores`);
    console.log(`result: ${reference}`);
    const header = ['step', 'workers', 'kernels', 'seconds', 'MB/s', 'M elem/s', 'peak RSS above baseline'];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    for (const r of [header, ...rows]) console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
    const notes = sizes.map((size) => {
      const wasm = warmMedian.get(`${size} webassembly`)!;
      const js = warmMedian.get(`${size} javascript`)!;
      return `${size} worker(s): stats median, WebAssembly ${wasm.toFixed(3)} s vs JavaScript ${js.toFixed(3)} s: ${(js / wasm).toFixed(2)}x the throughput`;
    });
    notes.push(machineLine());
    for (const line of notes) console.log(line);
    console.log(`wrote ${writeResults('stats', { header, rows, notes, elements: ELEMENTS }, startLoad)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
