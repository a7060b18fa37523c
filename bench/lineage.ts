// Benchmark of discovery + lineage on a large tree of small checkpoints.
//
// Writes 1,000 tiny safetensors checkpoints into a temp folder: 20 model families of 50 (a base,
// fine-tunes with trainer runs of checkpoint-N folders, merges, loose exported files), nested a few
// levels deep, some with model cards, trainer states or mergekit configs, most declaring nothing.
// Then times:
//   cold: scanCatalog + buildLineage (inference on, fingerprints on a WorkerPool) with an empty cache;
//   warm: the same with the CatalogCache of the cold run, saved to JSON and restored (as the
//         extension does between sessions): folders are listed and files stat'ed, nothing is read.
// Both with the WebAssembly and with the JavaScript kernels on the worker threads, side by side
// (lineage runs none of the element kernels, so they should match). Targets: cold < 3 s, warm <
// 300 ms. Also prints how many of the undeclared true parent links the weights recovered. The
// temp folder is deleted at the end; the table is written to bench-results/lineage.json.
//
// Run: node scripts/build.mjs && npx tsc -p . && node out/bench/lineage.js
// GRAFT_WORKER=<path> uses another worker bundle than dist/worker.js.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CatalogCache, scanCatalog } from '../src/core/catalog';
import { WorkerPool } from '../src/core/engine/pool';
import { buildLineage, lineageTasks, type LineageGraph } from '../src/core/lineage';
import { encodeFromFloat32, writeSafetensors } from '../src/core/safetensors';
import type { KernelChoice } from '../src/core/kernels';
import { workerScript as bundledWorker } from '../test/unit/helpers';
import { machineLine } from './lib/measure';
import { writeResults } from './lib/results';
import { printTable } from './lib/table';

const FAMILIES = 20;
const FINETUNES = 5;
const CHECKPOINTS_PER_RUN = 6;
const EXPORTS = 12;
const COLD_TARGET_MS = 3000;
const WARM_TARGET_MS = 300;
const workerScript = process.env.GRAFT_WORKER ?? bundledWorker;

/** A family's tensors: its own hidden size, so each family is one architecture. */
function shapesFor(family: number): [string, number[]][] {
  const hidden = 16 + family;
  return [
    ['embed.weight', [64, hidden]],
    ['layers.0.proj.weight', [hidden, hidden]],
    ['layers.0.norm.weight', [hidden]],
    ['layers.1.proj.weight', [hidden, hidden]],
    ['layers.1.norm.weight', [hidden]],
    ['head.weight', [64, hidden]],
  ];
}

type Weights = Map<string, Float32Array>;

/** Deterministic roughly-normal noise seeded by a label (FNV-1a, mulberry32, sum of three uniforms). */
function noise(n: number, label: string, scale: number): Float32Array {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
  let a = h >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (uniform() + uniform() + uniform() - 1.5) * 2 * scale;
  return out;
}

/** parent + t * direction + jitter, tensor by tensor. */
function derive(parent: Weights, label: string, direction: Weights | null, t: number, jitter: number): Weights {
  const out: Weights = new Map();
  for (const [name, values] of parent) {
    const step = direction?.get(name);
    const wobble = noise(values.length, `${label}/${name}`, jitter);
    out.set(name, values.map((v, k) => v + (step ? t * step[k] : 0) + wobble[k]));
  }
  return out;
}

function average(a: Weights, b: Weights): Weights {
  return new Map([...a].map(([name, values]) => [name, values.map((v, k) => (v + b.get(name)![k]) / 2)]));
}

async function writeModel(folder: string, weights: Weights, shapes: [string, number[]][], files: Record<string, string> = {}, fileName = 'model.safetensors'): Promise<void> {
  fs.mkdirSync(folder, { recursive: true });
  const tensors = shapes.map(([name, shape]) => ({ name, dtype: 'F32' as const, shape, data: encodeFromFloat32('F32', weights.get(name)!) }));
  await writeSafetensors(path.join(folder, fileName), tensors);
  for (const [file, text] of Object.entries(files)) fs.writeFileSync(path.join(folder, file), text);
}

/**
 * Writes the tree; returns the true links that nothing declares ([parent id, child id]). A fine-tune
 * is the end of its trainer run: base -> checkpoint-100 -> ... -> checkpoint-600 -> fine-tune.
 */
export async function generate(root: string): Promise<{ count: number; undeclared: [string, string][] }> {
  let count = 0;
  const undeclared: [string, string][] = [];
  const config = JSON.stringify({ model_type: 'bench', architectures: ['BenchModel'] });
  for (let f = 0; f < FAMILIES; f++) {
    const shapes = shapesFor(f);
    const family = `group-${f % 4}/family-${String(f).padStart(2, '0')}`;
    const base: Weights = new Map(shapes.map(([name, shape]) => [name, noise(shape.reduce((a, b) => a * b, 1), `f${f}/base/${name}`, 0.04)]));
    const baseName = `fam${f}-base`;
    const baseId = `${family}/models/${baseName}`;
    await writeModel(path.join(root, baseId), base, shapes, { 'config.json': config, 'README.md': '---\nlicense: mit\ntags: [bench]\n---\n' });
    count++;
    const finetunes: Weights[] = [];
    for (let k = 0; k < FINETUNES; k++) {
      const delta: Weights = new Map(shapes.map(([name, shape]) => [name, noise(shape.reduce((a, b) => a * b, 1), `f${f}/delta${k}/${name}`, 0.02)]));
      // The trainer run; trainer_state.json on even runs only (odd runs are checkpoint-N folders alone).
      let previous = baseId;
      for (let c = 1; c <= CHECKPOINTS_PER_RUN; c++) {
        const step = c * 100;
        const checkpoint = derive(base, `f${f}/ft${k}/c${c}`, delta, c / (CHECKPOINTS_PER_RUN + 1), 0.001);
        const id = `${family}/runs/ft${k}/checkpoint-${step}`;
        const state: Record<string, string> = k % 2 === 0 ? { 'trainer_state.json': JSON.stringify({ global_step: step, epoch: c / CHECKPOINTS_PER_RUN }) } : {};
        await writeModel(path.join(root, id), checkpoint, shapes, { 'config.json': config, ...state });
        if (k % 2 === 1 || c === 1) undeclared.push([previous, id]);
        previous = id;
        count++;
      }
      const ft = derive(base, `f${f}/ft${k}/final`, delta, 1, 0.001);
      finetunes.push(ft);
      const id = `${family}/models/fam${f}-ft${k}`;
      // Cards on some fine-tunes only.
      const card: Record<string, string> = k < 3 ? { 'README.md': `---\nbase_model: bench/${baseName}\n---\n` } : {};
      await writeModel(path.join(root, id), ft, shapes, { 'config.json': config, ...card });
      if (k >= 3) undeclared.push([previous, id]);
      count++;
    }
    // Two merges of fine-tune pairs; the first declares itself with a mergekit config.
    for (let m = 0; m < 2; m++) {
      const [a, b] = [2 * m + 1, 2 * m + 2];
      const id = `${family}/merges/fam${f}-merge${m}`;
      const declared: Record<string, string> = m === 0 ? { 'mergekit_config.yml': `models:\n  - model: bench/fam${f}-ft${a}\n  - model: bench/fam${f}-ft${b}\nmerge_method: linear\n` } : {};
      await writeModel(path.join(root, id), average(finetunes[a], finetunes[b]), shapes, { 'config.json': config, ...declared });
      if (m === 1) undeclared.push([`${family}/models/fam${f}-ft${a}`, id], [`${family}/models/fam${f}-ft${b}`, id]);
      count++;
    }
    // Loose exported files (no config, no card): small further tweaks of the fine-tunes.
    for (let e = 0; e < EXPORTS; e++) {
      const parent = e % FINETUNES;
      const file = `export-${e}.safetensors`;
      await writeModel(path.join(root, family, 'exports', `batch-${e % 3}`), derive(finetunes[parent], `f${f}/export${e}`, null, 0, 0.004), shapes, {}, file);
      undeclared.push([`${family}/models/fam${f}-ft${parent}`, `${family}/exports/batch-${e % 3}/${file}`]);
      count++;
    }
  }
  return { count, undeclared };
}

function recovered(graph: LineageGraph, undeclared: [string, string][]): { pairs: number; directed: number } {
  let pairs = 0;
  let directed = 0;
  for (const [parent, child] of undeclared) {
    const edge = graph.edges.find((e) => (e.child === child && e.parent === parent) || (e.child === parent && e.parent === child));
    if (!edge) continue;
    pairs++;
    if (edge.parent === parent && !edge.undirected) directed++;
  }
  return { pairs, directed };
}

/** CPU time of the process (all threads): wall time on a loaded machine says little. */
function cpuMs(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1000;
}

/** One cold and one warm pass with `kernels` on the worker threads; returns the table rows. */
async function measurePasses(root: string, count: number, undeclared: [string, string][], kernels: KernelChoice): Promise<{ rows: string[][]; graph: LineageGraph }> {
  const pool = new WorkerPool<typeof lineageTasks>({ workerScript, kernels });
  try {
    const cache = new CatalogCache();
    let cpu = process.cpuUsage();
    let started = performance.now();
    const catalog = await scanCatalog([root], { cache });
    const scanned = performance.now();
    const graph = await buildLineage(catalog, { root, infer: true, runner: pool, cache });
    const cold = performance.now() - started;
    const coldCpu = cpuMs(process.cpuUsage(cpu));
    console.log(`${kernels} cold: ${cold.toFixed(0)} ms (scan ${(scanned - started).toFixed(0)} ms, lineage ${(performance.now() - scanned).toFixed(0)} ms; ${coldCpu.toFixed(0)} ms CPU) ` +
      `${cold < COLD_TARGET_MS ? 'within' : 'OVER'} the ${COLD_TARGET_MS} ms target`);
    console.log(`  ${catalog.entries.length} entries, ${catalog.problems.length} problems, ${graph.nodes.length} nodes, ${graph.edges.length} edges ` +
      `(${graph.edges.filter((e) => e.source === 'weights').length} from weights)`);
    const { pairs, directed } = recovered(graph, undeclared);
    console.log(`  undeclared true links recovered from weights: ${pairs}/${undeclared.length} (${directed} with the right direction)`);

    const saved = JSON.stringify(cache.toJSON());
    const restored = CatalogCache.fromJSON(JSON.parse(saved));
    cpu = process.cpuUsage();
    started = performance.now();
    const warmCatalog = await scanCatalog([root], { cache: restored });
    const warmScanned = performance.now();
    const warmGraph = await buildLineage(warmCatalog, { root, infer: true, runner: pool, cache: restored });
    const warm = performance.now() - started;
    const warmCpu = cpuMs(process.cpuUsage(cpu));
    console.log(`${kernels} warm: ${warm.toFixed(0)} ms (scan ${(warmScanned - started).toFixed(0)} ms; ${warmCpu.toFixed(0)} ms CPU) ${warm < WARM_TARGET_MS ? 'within' : 'OVER'} the ${WARM_TARGET_MS} ms target ` +
      `(cache ${(saved.length / 1e6).toFixed(1)} MB of JSON; ${restored.stats.folderHits} folders and ${restored.stats.fingerprintHits} fingerprints from it, ` +
      `${restored.stats.folderMisses + restored.stats.fingerprintMisses} misses)`);
    if (JSON.stringify(warmGraph) !== JSON.stringify(graph)) throw new Error('The warm graph differs from the cold one.');
    const links = `${pairs}/${undeclared.length}`;
    return {
      graph,
      rows: [
        [`cold scan + lineage of ${count} checkpoints`, kernels, cold.toFixed(0), coldCpu.toFixed(0), String(COLD_TARGET_MS), links],
        ['warm (cache restored)', kernels, warm.toFixed(0), warmCpu.toFixed(0), String(WARM_TARGET_MS), links],
      ],
    };
  } finally {
    await pool.dispose();
  }
}

async function main(): Promise<void> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-bench-lineage-'));
  const startLoad = os.loadavg();
  try {
    const started = performance.now();
    const { count, undeclared } = await generate(root);
    console.log(`wrote ${count} checkpoints in ${((performance.now() - started) / 1000).toFixed(1)} s under ${root}`);
    const rows: string[][] = [];
    const graphs: string[] = [];
    for (const kernels of ['webassembly', 'javascript'] as KernelChoice[]) {
      const pass = await measurePasses(root, count, undeclared, kernels);
      rows.push(...pass.rows);
      graphs.push(JSON.stringify(pass.graph));
    }
    if (graphs.some((g) => g !== graphs[0])) throw new Error('The lineage graph differs between the kernels.');
    const header = ['step', 'kernels', 'ms', 'CPU ms', 'target ms', 'undeclared links recovered'];
    printTable(header, rows);
    // Lineage reads fingerprints (a few KB per checkpoint) and compares them on the main thread:
    // no element loop runs on the kernels, so the two paths differ only by noise.
    const notes = ['lineage runs no diff/stats/merge kernel: the two rows per step measure the same work', machineLine()];
    for (const line of notes) console.log(line);
    console.log(`wrote ${writeResults('lineage', { header, rows, notes, checkpoints: count }, startLoad)}`);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  void main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
