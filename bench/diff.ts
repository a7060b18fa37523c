// Benchmark of the exact diff against the cost of just reading its inputs.
//
// Writes two 1 GiB bf16 checkpoints (8 tensors of 64M elements; b = a + small noise) into a temp
// folder, streamed through the safetensors writer a chunk at a time, then times:
//   baseline: reading both files sequentially with positional reads of the diff's chunk size;
//   diff:     diffCheckpoints on a WorkerPool of the default size (and of one thread per core).
// Both are timed warm (the files were just written and are read once more before timing: this is
// the in-page-cache case; a cold disk makes both I/O-bound and the ratio closer to 1). Peak RSS is
// sampled on the main thread: worker threads live in the same process, so it includes them.
//
// Run: node scripts/build.mjs && npx tsc -p . && node out/bench/diff.js
// GRAFT_WORKER=<path> uses another worker bundle than dist/worker.js.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diffCheckpoints } from '../src/core/diff/diff';
import { DEFAULT_CHUNK_ELEMENTS, type DiffTasks } from '../src/core/diff/tasks';
import { defaultPoolSize, WorkerPool } from '../src/core/engine/pool';
import { encodeFromFloat32, openCheckpoint, SafetensorsFileWriter } from '../src/core/safetensors';
import { workerScript as bundledWorker } from '../test/unit/helpers';

const TENSORS = 8;
const ROWS = 8192;
const COLS = 8192; // 64M elements, 128 MiB of bf16 per tensor
const WRITE_CHUNK = 4 << 20;
const REPEATS = 3;
const MiB = 1024 * 1024;

/** xorshift32 -> roughly normal values (sum of uniforms): cheap and deterministic. */
function fillWeights(target: Float32Array, seed: number, scale: number): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < target.length; i++) {
    let sum = 0;
    for (let k = 0; k < 3; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      sum += (s >>> 0) / 4294967296;
    }
    target[i] = (sum - 1.5) * scale;
  }
}

async function writeCheckpoints(dir: string): Promise<[string, string]> {
  const specs = Array.from({ length: TENSORS }, (_, i) => ({ name: `model.layers.${i}.mlp.up_proj.weight`, dtype: 'BF16' as const, shape: [ROWS, COLS] }));
  const files: [string, string] = [path.join(dir, 'a.safetensors'), path.join(dir, 'b.safetensors')];
  const [wa, wb] = await Promise.all(files.map((f) => SafetensorsFileWriter.create(f, specs)));
  const base = new Float32Array(WRITE_CHUNK);
  const noise = new Float32Array(WRITE_CHUNK);
  const tuned = new Float32Array(WRITE_CHUNK);
  try {
    for (const [t, spec] of specs.entries()) {
      for (let start = 0, chunk = 0; start < ROWS * COLS; start += WRITE_CHUNK, chunk++) {
        fillWeights(base, (t + 1) * 7919 + chunk, 0.04);
        fillWeights(noise, (t + 1) * 104729 + chunk, 0.002);
        for (let i = 0; i < tuned.length; i++) tuned[i] = base[i] + noise[i];
        await Promise.all([wa.writeTensor(spec.name, encodeFromFloat32('BF16', base), start * 2), wb.writeTensor(spec.name, encodeFromFloat32('BF16', tuned), start * 2)]);
      }
    }
    await Promise.all([wa.commit(), wb.commit()]);
  } catch (error) {
    await Promise.all([wa.abort(), wb.abort()]);
    throw error;
  }
  return files;
}

/** What the diff cannot beat: reading every byte of both files once, in the diff's read size. */
async function readSequentially(files: string[]): Promise<number> {
  const buffer = new Uint8Array(DEFAULT_CHUNK_ELEMENTS * 2);
  let total = 0;
  for (const file of files) {
    const handle = await fs.promises.open(file, 'r');
    try {
      for (let position = 0; ; position += buffer.length) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) break;
        total += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }
  return total;
}

/** Runs fn, sampling RSS; returns seconds and the peak RSS seen. */
async function measure<T>(fn: () => Promise<T>): Promise<{ seconds: number; peakRss: number; value: T }> {
  let peakRss = process.memoryUsage().rss;
  const timer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 10);
  const started = process.hrtime.bigint();
  try {
    const value = await fn();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    return { seconds, peakRss, value };
  } finally {
    clearInterval(timer);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)];
}

async function main(): Promise<void> {
  const workerScript = process.env.GRAFT_WORKER ?? bundledWorker;
  if (!fs.existsSync(workerScript)) throw new Error(`${workerScript} is missing: run \`node scripts/build.mjs\` first.`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-diff-'));
  try {
    const written = await measure(() => writeCheckpoints(dir));
    const files = written.value;
    const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
    console.log(`wrote 2 x ${(bytes / 2 / MiB).toFixed(0)} MiB bf16 (${TENSORS} x ${ROWS}x${COLS}) in ${written.seconds.toFixed(1)} s, peak RSS ${(written.peakRss / MiB).toFixed(0)} MiB`);
    const [a, b] = await Promise.all(files.map((f) => openCheckpoint(f)));

    await readSequentially(files); // warm the page cache
    const rssBefore = process.memoryUsage().rss;
    const sizes = [...new Set([defaultPoolSize(), os.availableParallelism()])];
    const baseline: number[] = [];
    const baselinePeak: number[] = [];
    const diff = new Map<number, { seconds: number[]; peak: number[]; relL2: number }>();
    for (const size of sizes) diff.set(size, { seconds: [], peak: [], relL2: 0 });

    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const read = await measure(() => readSequentially(files));
      baseline.push(read.seconds);
      baselinePeak.push(read.peakRss);
      for (const size of sizes) {
        const pool = new WorkerPool<DiffTasks>({ workerScript, size });
        try {
          const run = await measure(() => diffCheckpoints(pool, a, b));
          const entry = diff.get(size)!;
          entry.seconds.push(run.seconds);
          entry.peak.push(run.peakRss);
          entry.relL2 = run.value.summary.rel_l2 ?? NaN;
        } finally {
          await pool.dispose();
        }
      }
    }

    const base = median(baseline);
    console.log(`baseline: read both files sequentially (${(DEFAULT_CHUNK_ELEMENTS * 2) / MiB} MiB reads): median ${base.toFixed(3)} s = ${((bytes / MiB) / base).toFixed(0)} MiB/s (runs ${baseline.map((s) => s.toFixed(3)).join(', ')})`);
    for (const [size, entry] of diff) {
      const seconds = median(entry.seconds);
      const peakAbove = Math.max(...entry.peak) - Math.max(rssBefore, ...baselinePeak);
      const label = size === defaultPoolSize() ? `${size} worker(s), the default` : `${size} worker(s), one per core`;
      console.log(
        `exact diff, ${label}: median ${seconds.toFixed(3)} s = ${(seconds / base).toFixed(2)}x baseline (target <= 1.5x; runs ${entry.seconds.map((s) => s.toFixed(3)).join(', ')}), ` +
          `peak RSS ${(Math.max(...entry.peak) / MiB).toFixed(0)} MiB = ${(peakAbove / MiB).toFixed(0)} MiB above the baseline's, rel_l2 ${entry.relL2.toFixed(5)}`,
      );
    }
    console.log(`cores ${os.availableParallelism()}, default pool size ${defaultPoolSize()}, node ${process.version}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((error) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
});
