// Lineage from weights on generated zoos whose truth is known (test/support/lineage-zoo.ts): 50
// zoos of fine-tunes, training runs, merges of every kind, merged LoRAs, casts, copies and
// unrelated models, nothing declared. Prints edge precision / recall (undirected and directed),
// merges with exactly the right parents, casts, copies and adapters recognised, links to unrelated
// models, against the targets: precision >= 0.95, recall >= 0.90, merges >= 90%, every cast and
// copy, no link to an unrelated model.
// Then the scale: 10,000 checkpoints of one architecture (a long training run with branches)
// written once as files into bench-data/, then indexed cold: a new process with no cache of any kind scans the folder,
// reads every header and fingerprint and infers the lineage (target < 10 s), with its CPU time
// and the load average (the machine may be shared).
//
// Run: npm run bench -- lineage-zoos   (GRAFT_ZOOS=<count> for fewer zoos, GRAFT_ZOO_SEED=<seed> for
// one, GRAFT_ZOO_VERBOSE=1 to print every miss; GRAFT_SCALE_ONLY=1 for the scale run alone,
// GRAFT_SCALE_MEMBERS=<count> for another size, GRAFT_SCALE_DTYPE=BF16 to store the run in bf16,
// GRAFT_SCALE_PROFILE=<folder> to write a CPU profile of the cold run there (and of its worker
// threads), GRAFT_SCALE_INLINE=1 to scan, read fingerprints and search neighbours on the calling
// thread instead of the worker pool `graft lineage` uses)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { scanCatalog } from '../src/core/catalog';
import { defaultPoolSize, WorkerPool } from '../src/core/engine/pool';
import { buildLineage } from '../src/core/lineage';
import { encodeFromFloat32, planSafetensors } from '../src/core/safetensors';
import type { GraftTasks } from '../src/worker/tasks';
import { repoRoot } from '../test/unit/helpers';
import { generateZoo, makeRng, normal, roundTo, writeZoo } from '../test/support/lineage-zoo';
import { scoreZoo, totalScores, type ZooScore } from '../test/support/lineage-score';

const ZOOS = Number(process.env.GRAFT_ZOOS ?? 50);
const FIRST_SEED = 1;
const SCALE_MEMBERS = Number(process.env.GRAFT_SCALE_MEMBERS ?? 10_000);
const SCALE_TARGET_MS = 10_000;

async function zoos(): Promise<void> {
  const only = process.env.GRAFT_ZOO_SEED;
  const seeds = only ? [Number(only)] : Array.from({ length: ZOOS }, (_, i) => FIRST_SEED + i);
  const scores: ZooScore[] = [];
  let models = 0;
  const started = performance.now();
  for (const seed of seeds) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-zoo-'));
    try {
      const zoo = generateZoo(seed);
      models += zoo.models.length;
      await writeZoo(root, zoo);
      const catalog = await scanCatalog([root]);
      const graph = await buildLineage(catalog, { root, infer: true });
      const score = scoreZoo(zoo, graph, root);
      scores.push(score);
      const problems = score.falseEdges.length + score.missed.length + score.wrongMerges.length + (score.casts - score.castsRecognised) + (score.copies - score.copiesRecognised);
      if (problems > 0 && (only || process.env.GRAFT_ZOO_VERBOSE)) {
        console.log(`zoo ${seed}: ${score.rightPairs}/${score.trueEdges} true links, ${score.falseEdges.length} false`);
        for (const e of score.falseEdges) console.log(`  false: ${e.parent} -> ${e.child} ${e.relation} ${e.recipe ?? ''}`);
        for (const e of score.missed) console.log(`  missed: ${e.parent} -> ${e.child} ${e.relation}`);
        for (const m of score.wrongMerges) console.log(`  merge ${m.child} (${m.method}): expected ${m.expected.join(', ')}; found ${m.found.join(', ') || 'none'}`);
        if (score.casts !== score.castsRecognised) console.log(`  casts ${score.castsRecognised}/${score.casts}`);
        if (score.adapters !== score.adaptersRecognised) console.log(`  adapters ${score.adaptersRecognised}/${score.adapters}`);
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const t = totalScores(scores);
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  console.log(`${t.zoos} zoos, ${models} checkpoints, ${((performance.now() - started) / 1000).toFixed(1)} s (write, scan, infer)`);
  console.log(`  undirected: precision ${pct(t.precision)} (target >= 95%), recall ${pct(t.recall)} (target >= 90%)`);
  console.log(`  directed:   precision ${pct(t.directedPrecision)}, recall ${pct(t.directedRecall)}`);
  console.log(`  merges with exactly the right parents: ${pct(t.mergesExactShare)} (target >= 90%); mean coefficient error (linear, task arithmetic) ${t.meanCoefficientError.toFixed(3)}`);
  console.log(`  casts ${t.castsRecognised}, copies ${t.copiesRecognised}, merged adapters ${t.adaptersRecognised}; links to unrelated models: ${t.unrelatedEdges} (target 0)`);
}

const SCALE_TENSORS = 16;
const SCALE_SHAPE = [16, 64];
const SCALE_DTYPE = (process.env.GRAFT_SCALE_DTYPE ?? 'F32') as 'F32' | 'BF16';
const SCALE_RUN_STEPS = 50;

/**
 * Writes 10,000 checkpoints of one architecture (a base, branches from earlier checkpoints, and a
 * run of steps along each, in folders with uninformative names: nothing declares a parent) and
 * returns the true parent of each. Not timed: this is the user's disk before Graft starts.
 */
function writeScaleZoo(root: string): Map<string, string> {
  const rng = makeRng(99);
  const numel = SCALE_SHAPE[0] * SCALE_SHAPE[1];
  const tensors = Array.from({ length: SCALE_TENSORS }, (_, t) => ({ name: `model.layers.${t}.weight`, dtype: SCALE_DTYPE, shape: SCALE_SHAPE }) as const);
  const plan = planSafetensors(tensors.map((t) => ({ ...t, shape: [...t.shape] })));
  const config = JSON.stringify({ model_type: 'llama', architectures: ['LlamaForCausalLM'], torch_dtype: 'float32' });
  const parentOf = new Map<string, string>();
  let written = 0;
  const write = (weights: Float32Array[], parent: string | undefined): string => {
    const dir = `b${Math.floor(written / SCALE_RUN_STEPS)}/s${written % SCALE_RUN_STEPS}`;
    written++;
    const buffer = new Uint8Array(plan.fileSize);
    buffer.set(plan.headerBytes, 0);
    tensors.forEach((t, i) => buffer.set(encodeFromFloat32(SCALE_DTYPE, weights[i]), plan.tensors.get(t.name)!.begin));
    fs.mkdirSync(path.join(root, dir), { recursive: true });
    fs.writeFileSync(path.join(root, dir, 'model.safetensors'), buffer);
    fs.writeFileSync(path.join(root, dir, 'config.json'), config);
    if (parent) parentOf.set(dir, parent);
    return dir;
  };
  const rounded = (weights: Float32Array[]) => weights.map((w) => roundTo(SCALE_DTYPE, w));
  const base = rounded(Array.from({ length: SCALE_TENSORS }, () => Float32Array.from({ length: numel }, () => 0.02 * normal(rng))));
  // Branch points: the base and the end of every run (memory stays small; the files hold the rest).
  const branchPoints: { dir: string; weights: Float32Array[] }[] = [{ dir: write(base, undefined), weights: base }];
  while (written < SCALE_MEMBERS) {
    let { dir: parent, weights: current } = branchPoints[Math.floor(rng() * branchPoints.length)];
    const direction = current.map((w) => Float32Array.from(w, () => 0.0004 * normal(rng)));
    for (let step = 0; step < SCALE_RUN_STEPS && written < SCALE_MEMBERS; step++) {
      current = rounded(current.map((w, i) => w.map((x, k) => x + direction[i][k] + 0.0002 * normal(rng))));
      parent = write(current, parent);
    }
    branchPoints.push({ dir: parent, weights: current });
  }
  return parentOf;
}

interface ColdRun {
  scanMs: number;
  lineageMs: number;
  /** From process start to the graph, as performance.now() counts. */
  totalMs: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  checkpoints: number;
  edges: { parent: string; child: string }[];
}

/**
 * In a fresh process: scan the folder, read every fingerprint, infer the lineage, as `graft lineage`
 * does (the scan, the fingerprints and a large group's neighbour search on a worker pool with a
 * thread per core; GRAFT_SCALE_INLINE=1 runs them on the calling thread instead).
 */
async function coldRun(root: string, result: string): Promise<void> {
  const pool = process.env.GRAFT_SCALE_INLINE ? undefined : new WorkerPool<GraftTasks>({ workerScript: path.resolve('dist', 'worker.js'), size: defaultPoolSize({ reserveMainThread: false }) });
  pool?.prestart(); // as `graft lineage` does
  try {
    await coldRunOn(root, result, pool);
  } finally {
    await pool?.dispose();
  }
}

async function coldRunOn(root: string, result: string, pool: WorkerPool<GraftTasks> | undefined): Promise<void> {
  const scanStarted = performance.now();
  const catalog = await scanCatalog([root], { runner: pool });
  const scanned = performance.now();
  const graph = await buildLineage(catalog, { root, infer: true, runner: pool });
  const done = performance.now();
  const cpu = process.cpuUsage();
  const run: ColdRun = {
    scanMs: scanned - scanStarted,
    lineageMs: done - scanned,
    totalMs: done,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    checkpoints: catalog.entries.length,
    edges: graph.edges.map((e) => ({ parent: e.parent, child: e.child })),
  };
  fs.writeFileSync(path.join(result, 'cold-run.json'), JSON.stringify(run));
}

/** Reads every file under `dir` once (not timed), so the cold run finds them in the page cache as after writing them. */
function warmPageCache(dir: string): void {
  for (const dirent of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, dirent.name);
    if (dirent.isDirectory()) warmPageCache(full);
    else if (dirent.isFile()) fs.readFileSync(full);
  }
}

/**
 * 10,000 checkpoints of one architecture, cold: a new Node process (no catalog, fingerprint or
 * index cache, nothing in memory) scans the folder, reads every header and fingerprint from the
 * files and infers the lineage. The files are written once into bench-data/ (git-ignored) and read
 * through before each run, so the OS page cache holds them (as on a machine that recently touched
 * them); the wall time includes the process start.
 */
function scale(): void {
  const root = path.join(repoRoot, 'bench-data', `lineage-scale-${SCALE_MEMBERS}-${SCALE_DTYPE}-v1`);
  const truthFile = path.join(root, 'parents.json');
  let parentOf: Map<string, string>;
  let writeMs = 0;
  if (fs.existsSync(truthFile)) {
    parentOf = new Map(Object.entries(JSON.parse(fs.readFileSync(truthFile, 'utf8')) as Record<string, string>));
  } else {
    // Written once (into a .partial folder renamed when complete), then reused: the cold run keeps no state in it.
    const partial = `${root}.partial`;
    fs.rmSync(partial, { recursive: true, force: true });
    const writeStarted = performance.now();
    parentOf = writeScaleZoo(partial);
    fs.writeFileSync(path.join(partial, 'parents.json'), JSON.stringify(Object.fromEntries(parentOf)));
    writeMs = performance.now() - writeStarted;
    fs.renameSync(partial, root);
  }
  warmPageCache(root);
  const result = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-scale-'));
  try {
    const load = os.loadavg()[0];
    const started = performance.now();
    const child = spawnSync(process.execPath, [...(process.env.GRAFT_SCALE_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.GRAFT_SCALE_PROFILE}`] : []), __filename, '--cold-run', root, result], { stdio: 'inherit' });
    const wallMs = performance.now() - started;
    if (child.status !== 0) throw new Error(`The cold run exited with ${child.status ?? child.signal}.`);
    const run = JSON.parse(fs.readFileSync(path.join(result, 'cold-run.json'), 'utf8')) as ColdRun;
    const found = new Set(run.edges.map((e) => [e.parent, e.child].sort().join('\0')));
    const recovered = [...parentOf].filter(([child, parent]) => found.has([parent, child].sort().join('\0'))).length;
    console.log(`scale: ${run.checkpoints} checkpoints of one architecture (${SCALE_TENSORS} tensors of ${SCALE_SHAPE.join('x')} ${SCALE_DTYPE}), ${writeMs > 0 ? `written in ${(writeMs / 1000).toFixed(1)} s` : 'written by an earlier run'} (not timed)`);
    console.log(`  cold (new process, no cache of any kind; files in the OS page cache; scan, fingerprints and neighbour search ${process.env.GRAFT_SCALE_INLINE ? 'on the calling thread' : 'on the worker pool'}): ${(wallMs / 1000).toFixed(2)} s wall from process start ` +
      `${wallMs < SCALE_TARGET_MS ? 'within' : 'OVER'} the ${SCALE_TARGET_MS / 1000} s target; scan ${(run.scanMs / 1000).toFixed(2)} s, fingerprints and inference ${(run.lineageMs / 1000).toFixed(2)} s`);
    console.log(`  CPU ${((run.cpuUserMs + run.cpuSystemMs) / 1000).toFixed(2)} s (user ${(run.cpuUserMs / 1000).toFixed(2)}, system ${(run.cpuSystemMs / 1000).toFixed(2)}); load average ${load.toFixed(2)} on ${os.cpus().length} cores before the run`);
    console.log(`  ${run.edges.length} edges; true links recovered ${recovered}/${parentOf.size} (${((100 * recovered) / parentOf.size).toFixed(1)}%), false ${run.edges.length - recovered}`);
  } finally {
    fs.rmSync(result, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const cold = process.argv.indexOf('--cold-run');
  if (cold >= 0) return coldRun(process.argv[cold + 1], process.argv[cold + 2]);
  if (process.env.GRAFT_SCALE_ONLY) return scale();
  await zoos();
  if (!process.env.GRAFT_ZOO_SEED) scale();
}

void main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
