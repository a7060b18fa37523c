// Benchmark of the exact diff against the cost of just reading its inputs.
//
// Writes two 1 GiB bf16 checkpoints (8 tensors of 64M elements; b = a + small noise) into a temp
// folder, streamed through the safetensors writer a chunk at a time, then times, REPEATS times:
//   O_DIRECT read: both files read from the device with dd iflag=direct (8 MiB blocks): the time
//     to read both files that the target is about, since a read from the page cache is a memcpy;
//   buffered read: both files read with positional reads of the diff's read size, from a cold
//     cache (the files' pages dropped first, see bench/lib/disk.ts) and from a warm one;
//   exact diff: diffCheckpoints on a WorkerPool of the default size (and of one thread per core),
//     with the WebAssembly kernels warm and cold, and with the JavaScript kernels warm (side by
//     side: the same files, the same pool). The pool starts inside the timing, as for `graft diff`.
// Peak RSS is sampled on the main thread every 5 ms; worker threads live in the same process, so
// it includes them. The table is also written to bench-results/diff.json.
//
// Run: node scripts/build.mjs && npx tsc -p . && node scripts/bench.mjs diff
// GRAFT_WORKER=<path> uses another worker bundle than dist/worker.js; TMPDIR picks the disk.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { diffCheckpoints } from '../src/core/diff/diff';
import { DEFAULT_CHUNK_ELEMENTS, type DiffTasks } from '../src/core/diff/tasks';
import type { DiffReport } from '../src/core/diff/types';
import { defaultPoolSize, WorkerPool } from '../src/core/engine/pool';
import type { KernelChoice } from '../src/core/kernels';
import { encodeFromFloat32, openCheckpoint, SafetensorsFileWriter } from '../src/core/safetensors';
import { workerScript as bundledWorker } from '../test/unit/helpers';
import { evictFromPageCache, readDirect, residentBytes } from './lib/disk';
import { listRuns, machineLine, measure, median, type Measurement } from './lib/measure';
import { writeResults } from './lib/results';
import { printTable } from './lib/table';

const TENSORS = 8;
const ROWS = 8192;
const COLS = 8192; // 64M elements, 128 MiB of bf16 per tensor
const WRITE_CHUNK = 4 << 20;
const REPEATS = 3;
const TARGET_RATIO = 1.5;
/** With the page cache warm the diff is compute against a memcpy: its own target (1.5x is the stretch). */
const WARM_TARGET_RATIO = 3;
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

/** Reading every byte of both files once, in the diff's read size, through the page cache. */
async function readBuffered(files: string[]): Promise<number> {
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

async function readBothDirect(files: string[]): Promise<number> {
  let seconds = 0;
  for (const file of files) seconds += (await readDirect(file)).seconds;
  return seconds;
}

/** Drops both files from the page cache; returns the bytes still cached (undefined: cannot tell). */
async function evictAll(files: string[]): Promise<number | undefined> {
  for (const file of files) await evictFromPageCache(file);
  const left = await Promise.all(files.map((f) => residentBytes(f)));
  return left.some((b) => b === undefined) ? undefined : left.reduce((n: number, b) => n + b!, 0);
}

interface Series {
  label: string;
  workers: string;
  kernels: KernelChoice | '-';
  cache: 'device' | 'cold' | 'warm';
  runs: Measurement<unknown>[];
  /** Seconds of each run when not the wall time of `runs` (dd reports its own). */
  seconds?: number[];
}

const secondsOf = (s: Series): number[] => s.seconds ?? s.runs.map((r) => r.seconds);

async function main(): Promise<void> {
  const workerScript = process.env.GRAFT_WORKER ?? bundledWorker;
  if (!fs.existsSync(workerScript)) throw new Error(`${workerScript} is missing: run \`node scripts/build.mjs\` first.`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-diff-'));
  const startLoad = os.loadavg();
  try {
    console.log(`start: ${machineLine()}`);
    const written = await measure(() => writeCheckpoints(dir));
    const files = written.value;
    const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
    console.log(`wrote 2 x ${(bytes / 2 / MiB).toFixed(0)} MiB bf16 (${TENSORS} x ${ROWS}x${COLS}) in ${written.seconds.toFixed(1)} s, peak RSS ${(written.peakRss / MiB).toFixed(0)} MiB`);
    const [a, b] = await Promise.all(files.map((f) => openCheckpoint(f)));

    const sizes = [...new Set([defaultPoolSize(), os.availableParallelism()])];
    const direct: Series = { label: 'read both, O_DIRECT (dd, 8 MiB blocks)', workers: '-', kernels: '-', cache: 'device', runs: [], seconds: [] };
    const coldRead: Series = { label: `read both, buffered (${(DEFAULT_CHUNK_ELEMENTS * 2) / MiB} MiB preads)`, workers: '-', kernels: '-', cache: 'cold', runs: [] };
    const warmRead: Series = { ...coldRead, cache: 'warm', runs: [] };
    const variants = [['webassembly', 'warm'], ['webassembly', 'cold'], ['javascript', 'warm']] as const;
    const diffs = sizes.flatMap((size) =>
      variants.map(([kernels, cache]): Series & { size: number; kernels: KernelChoice } => ({ label: 'exact diff', workers: String(size), kernels, cache, runs: [], size })),
    );
    const reports: DiffReport[] = [];
    let leftCached: number | undefined = 0;
    const noteEviction = (left: number | undefined) => (leftCached = left === undefined || leftCached === undefined ? undefined : Math.max(leftCached, left));

    for (let repeat = 0; repeat < REPEATS; repeat++) {
      const d = await measure(() => readBothDirect(files));
      direct.runs.push(d);
      direct.seconds!.push(d.value);

      noteEviction(await evictAll(files));
      coldRead.runs.push(await measure(() => readBuffered(files)));
      warmRead.runs.push(await measure(() => readBuffered(files)));

      for (const series of diffs) {
        if (series.cache === 'cold') noteEviction(await evictAll(files));
        else await readBuffered(files);
        const pool = new WorkerPool<DiffTasks>({ workerScript, size: series.size, kernels: series.kernels });
        try {
          const run = await measure(() => diffCheckpoints(pool, a, b));
          series.runs.push(run);
          reports.push(run.value);
        } finally {
          await pool.dispose();
        }
      }
    }

    // Every run compared the same files: their summaries agree up to the order partial sums were added in.
    const first = reports[0].summary;
    for (const report of reports) {
      const s = report.summary;
      const relL2 = s.rel_l2 ?? NaN;
      const agrees = Number.isFinite(relL2) && Math.abs(relL2 - (first.rel_l2 ?? NaN)) <= 1e-12 * relL2;
      if (s.numel !== TENSORS * ROWS * COLS || s.frac_changed !== first.frac_changed || !agrees) {
        throw new Error(`diff runs disagree: ${JSON.stringify(s)} vs ${JSON.stringify(first)}`);
      }
    }

    const directSeconds = median(secondsOf(direct));
    const sameCacheRead = (cache: Series['cache']) => median(secondsOf(cache === 'cold' ? coldRead : cache === 'warm' ? warmRead : direct));
    const rows = [direct, coldRead, warmRead, ...diffs].map((series) => {
      const seconds = median(secondsOf(series));
      const peak = Math.max(...series.runs.map((r) => r.peakRss));
      const above = Math.max(...series.runs.map((r) => r.peakRss - r.startRss));
      return [
        series.label, series.workers, series.kernels, series.cache, seconds.toFixed(3), series.cache === 'device' ? '-' : median(series.runs.map((r) => r.cpuSeconds)).toFixed(3), (bytes / MiB / seconds).toFixed(0),
        (seconds / directSeconds).toFixed(2), (seconds / sameCacheRead(series.cache)).toFixed(2),
        (peak / MiB).toFixed(0), (above / MiB).toFixed(0), listRuns(secondsOf(series)),
      ];
    });
    console.log(`${REPEATS} runs each, medians; CPU s = the process's user + system time, all threads (dd's is its own process: not counted); MiB/s = both files' bytes / seconds; cold = the files' pages dropped from the page cache first`);
    const header = ['step', 'workers', 'kernels', 'cache', 'seconds', 'CPU s', 'MiB/s', 'x O_DIRECT read', 'x read, same cache', 'peak RSS MiB', 'above start MiB', 'runs (s)'];
    printTable(header, rows);
    const notes: string[] = [];
    const note = (line: string) => {
      console.log(line);
      notes.push(line);
    };
    if (leftCached === undefined) note('page cache: eviction not verified (fincore from util-linux is not installed)');
    else note(`page cache: at most ${(leftCached / MiB).toFixed(1)} MiB of the ${(bytes / MiB).toFixed(0)} MiB were still cached after an eviction`);
    note(`result: rel_l2 ${first.rel_l2?.toExponential(6)}, frac_changed ${first.frac_changed.toFixed(6)}, cosine ${first.cosine.toFixed(9)} over ${first.numel.toLocaleString('en-US')} elements (all ${reports.length} runs agree)`);

    // The verdicts, one per notion of "the time to read both files".
    for (const size of sizes) {
      const find = (kernels: KernelChoice, cache: Series['cache']) => median(secondsOf(diffs.find((s) => s.size === size && s.kernels === kernels && s.cache === cache)!));
      const cold = find('webassembly', 'cold');
      const warm = find('webassembly', 'warm');
      const verdict = (ratio: number) => `${ratio.toFixed(2)}x ${ratio <= TARGET_RATIO ? 'MET' : 'NOT MET'}`;
      note(`${size} worker(s): warm diff, WebAssembly ${warm.toFixed(3)} s vs JavaScript ${find('javascript', 'warm').toFixed(3)} s: ${(find('javascript', 'warm') / warm).toFixed(2)}x faster`);
      note(
        `target <= ${TARGET_RATIO}x read time, ${size} worker(s)${size === defaultPoolSize() ? ' (default)' : ''}: ` +
          `cold diff vs O_DIRECT read ${verdict(cold / directSeconds)}; cold diff vs cold buffered read ${verdict(cold / sameCacheRead('cold'))}; ` +
          `warm diff vs O_DIRECT read ${verdict(warm / directSeconds)}; warm diff vs warm page-cache read ${verdict(warm / sameCacheRead('warm'))}`,
      );
      const warmRatio = warm / sameCacheRead('warm');
      note(`target <= ${WARM_TARGET_RATIO}x the warm page-cache read, ${size} worker(s): ${warmRatio.toFixed(2)}x ${warmRatio <= WARM_TARGET_RATIO ? 'MET' : 'NOT MET'}`);
    }
    note(`${machineLine()}; default pool size ${defaultPoolSize()}`);
    console.log(`wrote ${writeResults('diff', { header, rows, notes, bytes, repeats: REPEATS }, startLoad)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main().catch((error) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
});
