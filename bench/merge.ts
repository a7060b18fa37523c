// Benchmark of `graft merge` against the I/O floor and a torch CPU reference.
//
// Three ~500 MB bf16 llama-like checkpoints (base, ft1, ft2: a base and two fine-tunes with
// heavy-tailed updates) are written once with Graft's writer into bench-data/ (git-ignored) and
// reused by later runs. With the page cache warm, REPEATS times each:
//   I/O floor: read the three inputs (8 MiB positional reads, two in flight) and write an output
//     of the same size, synced, as a merge writes its output; no compute;
//   graft merge linear (normalised weights over the three) and TIES (density 0.5, base + the two
//     fine-tunes), through the real CLI (dist/cli.js, default workers), in its own process;
//   torch (when some python3 imports torch): bench/torch_merge.py doing the same merges tensor by
//     tensor (load, compute in float32, cast, write, sync).
// Wall and CPU seconds (user + system of the process, all threads) and peak RSS come from GNU
// time for the child processes. The table is also written to bench-results/merge.json.
//
// Run: npm run bench -- merge (builds first). GRAFT_BENCH_PYTHON picks the python to try first;
// GRAFT_BENCH_TORCH=0 skips the torch reference.
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeFromFloat32, readElements, SafetensorsFileWriter, openCheckpoint } from '../src/core/safetensors';
import { repoRoot } from '../test/unit/helpers';
import { tensorShapes, writeTinyConfig, type TinyModelSpec } from '../test/support/tinyModels';
import { listRuns, machineLine, measure, median } from './lib/measure';
import { writeResults } from './lib/results';
import { printTable } from './lib/table';

/** ~253 M parameters: 506 MB in bf16. */
const SPEC: TinyModelSpec = { layers: 16, hidden: 1024, intermediate: 2816, vocab: 32000, dtype: 'BF16' };
const MODELS = ['base', 'ft1', 'ft2'] as const;
const DATA = path.join(repoRoot, 'bench-data', `merge-llama-${SPEC.layers}x${SPEC.hidden}-v1`);
const REPEATS = 3;
const WRITE_CHUNK = 1 << 22;
const IO_CHUNK_BYTES = 8 << 20;
const MiB = 1024 * 1024;
const RSS_LIMIT_MIB = 512;
const TARGETS = { linear: 2, ties: 5 } as const;
const GNU_TIME = '/usr/bin/time';

/** xorshift32 -> roughly normal values (sum of three uniforms), plus `offset`: cheap and deterministic. */
function fillWeights(target: Float32Array, seed: number, scale: number, offset = 0): void {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < target.length; i++) {
    let sum = 0;
    for (let k = 0; k < 3; k++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      sum += (s >>> 0) / 4294967296;
    }
    target[i] = offset + (sum - 1.5) * scale;
  }
}

/** Fine-tuning updates: mostly small, a few large (a normal-ish value over a uniform one). */
function addUpdates(target: Float32Array, base: Float32Array, seed: number, scale: number): void {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  for (let i = 0; i < target.length; i++) {
    const g = next() + next() + next() - 1.5;
    target[i] = base[i] + (scale * g) / Math.max(0.15, next());
  }
}

/** The three checkpoints, written on the first run (into a .partial folder renamed when complete). */
async function ensureCheckpoints(): Promise<string[]> {
  const dirs = MODELS.map((m) => path.join(DATA, m));
  if (dirs.every((d) => fs.existsSync(path.join(d, 'model.safetensors')) && fs.existsSync(path.join(d, 'config.json')))) return dirs;
  const partial = `${DATA}.partial`;
  fs.rmSync(partial, { recursive: true, force: true });
  const specs = tensorShapes(SPEC).map(({ name, shape }) => ({ name, dtype: SPEC.dtype, shape }));
  const writers = await Promise.all(MODELS.map(async (m) => {
    fs.mkdirSync(path.join(partial, m), { recursive: true });
    await writeTinyConfig(path.join(partial, m), SPEC);
    return SafetensorsFileWriter.create(path.join(partial, m, 'model.safetensors'), specs, { format: 'pt' });
  }));
  const written = await measure(async () => {
    const base = new Float32Array(WRITE_CHUNK);
    const tuned = new Float32Array(WRITE_CHUNK);
    for (const [t, spec] of specs.entries()) {
      const numel = spec.shape.reduce((a, b) => a * b, 1);
      for (let start = 0, chunk = 0; start < numel; start += WRITE_CHUNK, chunk++) {
        const n = Math.min(WRITE_CHUNK, numel - start);
        const b = base.subarray(0, n);
        fillWeights(b, (t + 1) * 7919 + chunk, 0.04, spec.name.endsWith('norm.weight') ? 1 : 0);
        await writers[0].writeTensor(spec.name, encodeFromFloat32('BF16', b), start * 2);
        for (let m = 1; m < MODELS.length; m++) {
          addUpdates(tuned.subarray(0, n), b, (t + 1) * 104729 + chunk * 31 + m, 0.0005);
          await writers[m].writeTensor(spec.name, encodeFromFloat32('BF16', tuned.subarray(0, n)), start * 2);
        }
      }
    }
    for (const w of writers) await w.commit();
  });
  fs.rmSync(DATA, { recursive: true, force: true });
  fs.renameSync(partial, DATA);
  console.log(`wrote ${MODELS.length} checkpoints into ${path.relative(repoRoot, DATA)} in ${written.seconds.toFixed(1)} s`);
  return dirs;
}

/** Reads every file once so the measurements start with a warm page cache. */
async function warm(files: string[]): Promise<void> {
  const buffer = new Uint8Array(IO_CHUNK_BYTES);
  for (const file of files) {
    const handle = await fs.promises.open(file, 'r');
    try {
      for (let position = 0; ; position += buffer.length) if ((await handle.read(buffer, 0, buffer.length, position)).bytesRead === 0) break;
    } finally {
      await handle.close();
    }
  }
}

/** The I/O floor: every input byte read and an output as large as one input written and synced. */
async function ioFloor(inputs: string[], out: string): Promise<void> {
  const size = fs.statSync(inputs[0]).size;
  const handles = await Promise.all(inputs.map((f) => fs.promises.open(f, 'r')));
  const output = await fs.promises.open(out, 'w');
  try {
    await output.truncate(size);
    let next = 0;
    // Two lanes, as a merge keeps reads and writes of two workers in flight.
    const lane = async () => {
      const buffers = inputs.map(() => new Uint8Array(IO_CHUNK_BYTES));
      for (let position = next; position < size; position = next) {
        next += IO_CHUNK_BYTES;
        const length = Math.min(IO_CHUNK_BYTES, size - position);
        await Promise.all(handles.map((h, i) => h.read(buffers[i], 0, length, position)));
        await output.write(buffers[0], 0, length, position);
      }
    };
    await Promise.all([lane(), lane()]);
    await output.sync();
  } finally {
    await Promise.all([...handles, output].map((h) => h.close()));
  }
}

interface Run {
  seconds: number;
  cpuSeconds?: number;
  peakRssMiB?: number;
}

/** Runs a command, timing it; with GNU time, also its CPU seconds and peak RSS. */
async function timed(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  const withTime = fs.existsSync(GNU_TIME);
  const report = path.join(os.tmpdir(), `graft-bench-time-${process.pid}.txt`);
  const [file, argv] = withTime ? [GNU_TIME, ['-f', '%e %U %S %M', '-o', report, command, ...args]] : [command, args];
  const started = process.hrtime.bigint();
  const stderr: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(file, argv, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (d) => stderr.push(String(d)));
    child.on('error', reject);
    child.on('close', resolve);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.join('').trim()}`);
  if (!withTime) return { seconds };
  const [, user, system, maxKiB] = fs.readFileSync(report, 'utf8').trim().split(/\s+/).slice(-4).map(Number);
  fs.rmSync(report, { force: true });
  return { seconds, cpuSeconds: user + system, peakRssMiB: maxKiB / 1024 };
}

/**
 * A python that imports torch: GRAFT_BENCH_PYTHON, python3 on the PATH, or the system's python3.
 * GRAFT_BENCH_TORCH=0 leaves torch out (its merges take most of a run's time).
 */
function findTorchPython(): { python?: string; version?: string; tried: string[]; skipped?: boolean } {
  if (process.env.GRAFT_BENCH_TORCH === '0') return { tried: [], skipped: true };
  const candidates = [process.env.GRAFT_BENCH_PYTHON, 'python3', '/usr/bin/python3'].filter((c): c is string => Boolean(c));
  const tried: string[] = [];
  for (const python of [...new Set(candidates)]) {
    try {
      const version = execFileSync(python, ['-c', 'import os, torch; torch.set_num_threads(os.cpu_count() or 1); print(torch.__version__, torch.get_num_threads())'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      return { python, version, tried };
    } catch {
      tried.push(python);
    }
  }
  return { tried };
}

/** Elements of two bf16 outputs that differ (by value; NaN equals NaN). */
async function countDifferences(a: string, b: string): Promise<{ differ: number; total: number }> {
  const [x, y] = await Promise.all([openCheckpoint(a), openCheckpoint(b)]);
  let differ = 0;
  let total = 0;
  for (const t of x.tensors) {
    const other = y.tensors.find((u) => u.name === t.name);
    if (!other) throw new Error(`${b} lacks tensor ${t.name}`);
    for (let start = 0; start < t.numel; start += WRITE_CHUNK) {
      const n = Math.min(WRITE_CHUNK, t.numel - start);
      const [p, q] = await Promise.all([readElements(t, start, n), readElements(other, start, n)]);
      for (let i = 0; i < n; i++) if (p[i] !== q[i] && !(p[i] !== p[i] && q[i] !== q[i])) differ++;
      total += n;
    }
  }
  return { differ, total };
}

async function main(): Promise<void> {
  const cli = path.join(repoRoot, 'dist', 'cli.js');
  if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first.`);
  const startLoad = os.loadavg();
  console.log(`start: ${machineLine()}`);
  const dirs = await ensureCheckpoints();
  const inputs = dirs.map((d) => path.join(d, 'model.safetensors'));
  const inputBytes = inputs.reduce((n, f) => n + fs.statSync(f).size, 0);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-merge-'));
  const torch = findTorchPython();
  const torchScript = path.join(repoRoot, 'bench', 'torch_merge.py');
  try {
    const recipes = {
      linear: `merge_method: linear\nmodels:\n${dirs.map((d, i) => `  - model: ${d}\n    parameters: {weight: ${[0.5, 0.3, 0.2][i]}}\n`).join('')}`,
      ties: `merge_method: ties\nbase_model: ${dirs[0]}\nparameters: {density: 0.5}\nmodels:\n  - model: ${dirs[1]}\n    parameters: {weight: 0.6}\n  - model: ${dirs[2]}\n    parameters: {weight: 0.4}\n`,
    };
    const torchArgs = {
      linear: ['linear', dirs.flatMap((d, i) => [path.join(d, 'model.safetensors'), String([0.5, 0.3, 0.2][i])])],
      ties: ['ties', ['0.5', inputs[0], inputs[1], '0.6', inputs[2], '0.4']],
    } as const;
    for (const [name, text] of Object.entries(recipes)) fs.writeFileSync(path.join(work, `${name}.yml`), text);

    const series: { label: string; key: string; runs: Run[] }[] = [
      { label: 'I/O floor: read 3 inputs, write 1 output', key: 'floor', runs: [] },
      { label: 'graft merge linear', key: 'graft-linear', runs: [] },
      { label: 'graft merge ties (density 0.5)', key: 'graft-ties', runs: [] },
    ];
    if (torch.python) series.push({ label: 'torch linear', key: 'torch-linear', runs: [] }, { label: 'torch ties (density 0.5)', key: 'torch-ties', runs: [] });
    const outputOf = (key: string) => path.join(work, key.startsWith('graft') ? key : `${key}.safetensors`);
    const clear = (key: string) => fs.rmSync(outputOf(key), { recursive: true, force: true });

    await warm(inputs);
    for (let repeat = 0; repeat < REPEATS; repeat++) {
      for (const s of series) {
        clear(s.key);
        if (s.key === 'floor') {
          const m = await measure(() => ioFloor(inputs, outputOf('floor')));
          s.runs.push({ seconds: m.seconds, cpuSeconds: m.cpuSeconds, peakRssMiB: m.peakRss / MiB });
        } else if (s.key.startsWith('graft')) {
          const method = s.key.slice('graft-'.length);
          s.runs.push(await timed(process.execPath, [cli, 'merge', path.join(work, `${method}.yml`), '--out', outputOf(s.key), '--no-hf-cache']));
        } else {
          const [method, args] = torchArgs[s.key.slice('torch-'.length) as 'linear' | 'ties'];
          s.runs.push(await timed(torch.python!, [torchScript, method, outputOf(s.key), ...args]));
        }
      }
    }

    const floor = median(series[0].runs.map((r) => r.seconds));
    const seconds = (key: string) => median(series.find((s) => s.key === key)!.runs.map((r) => r.seconds));
    const rows = series.map((s) => {
      const wall = median(s.runs.map((r) => r.seconds));
      const cpu = s.runs.every((r) => r.cpuSeconds !== undefined) ? median(s.runs.map((r) => r.cpuSeconds!)).toFixed(2) : '-';
      const peak = s.runs.every((r) => r.peakRssMiB !== undefined) ? Math.max(...s.runs.map((r) => r.peakRssMiB!)).toFixed(0) : '-';
      const method = s.key.split('-')[1];
      const vsTorch = s.key.startsWith('graft') && torch.python ? (wall / seconds(`torch-${method}`)).toFixed(2) : '-';
      return [s.label, wall.toFixed(2), cpu, (inputBytes / MiB / wall).toFixed(0), (wall / floor).toFixed(2), vsTorch, peak, listRuns(s.runs.map((r) => r.seconds), 2)];
    });
    console.log(`${REPEATS} runs each, medians, page cache warm; inputs 3 x ${(inputBytes / 3 / MiB).toFixed(0)} MiB bf16 (${tensorShapes(SPEC).length} tensors); CPU s = user + system of the process, all threads; MiB/s = input bytes / seconds`);
    const header = ['step', 'seconds', 'CPU s', 'MiB/s', 'x I/O floor', 'x torch', 'peak RSS MiB', 'runs (s)'];
    printTable(header, rows);

    const notes: string[] = [];
    const note = (line: string) => {
      console.log(line);
      notes.push(line);
    };
    const verdict = (ok: boolean) => (ok ? 'MET' : 'NOT MET');
    for (const method of ['linear', 'ties'] as const) {
      const ratio = seconds(`graft-${method}`) / floor;
      const rss = Math.max(...series.find((s) => s.key === `graft-${method}`)!.runs.map((r) => r.peakRssMiB ?? NaN));
      const vsTorch = torch.python ? seconds(`graft-${method}`) / seconds(`torch-${method}`) : undefined;
      note(
        `${method}: ${ratio.toFixed(2)}x the I/O floor (target <= ${TARGETS[method]}x: ${verdict(ratio <= TARGETS[method])}); ` +
          (vsTorch === undefined ? 'torch not measured; ' : `${vsTorch.toFixed(2)}x torch's time (faster than torch: ${verdict(vsTorch < 1)}); `) +
          `peak RSS ${Number.isFinite(rss) ? `${rss.toFixed(0)} MiB (< ${RSS_LIMIT_MIB} MiB: ${verdict(rss < RSS_LIMIT_MIB)})` : 'not measured (GNU time missing)'}`,
      );
      if (torch.python) {
        const d = await countDifferences(path.join(outputOf(`graft-${method}`), 'model.safetensors'), outputOf(`torch-${method}`));
        note(`${method}: Graft's output and torch's differ in ${d.differ.toLocaleString('en-US')} of ${d.total.toLocaleString('en-US')} elements`);
      }
    }
    note(torch.python ? `torch ${torch.version} (version, threads as the script sets them) via ${torch.python}; torch.topk breaks magnitude ties in no specified order, Graft (like a stable sort) by index, so TIES outputs differ where ties straddle the cut` : `torch reference not run: ${torch.skipped ? 'GRAFT_BENCH_TORCH=0' : `no python3 importing torch (tried ${torch.tried.join(', ')}); set GRAFT_BENCH_PYTHON`}`);
    note(machineLine());
    console.log(`wrote ${writeResults('merge', { header, rows, notes, inputBytes, repeats: REPEATS }, startLoad)}`);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

void main().catch((error) => {
  console.error(error instanceof Error ? error.stack : error);
  process.exitCode = 1;
});
