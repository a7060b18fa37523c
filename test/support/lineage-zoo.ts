// Seeded zoos of checkpoints whose true lineage is known by construction, made the way people make
// them: fine-tunes (full and partial, heavy-tailed updates), training runs, merges (linear, task
// arithmetic, TIES, DARE, SLERP with random coefficients, mergekit semantics), LoRAs merged into
// their parent, casts to bf16/f16, byte-identical copies and unrelated models of the same shapes,
// under nested folders with uninformative names, with no card or declaration of any kind.
// Used by the lineage tests (a handful of zoos) and the lineage bench (50 zoos); see lineage-score.ts.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeToFloat, encodeFromFloat32, writeSafetensors } from '../../src/core/safetensors';
import { prng } from '../../src/core/sampling';
import { normal } from './tinyModels';

export type Rng = () => number;

/** A seeded generator in [0, 1) (the sampler's mulberry32). */
export const makeRng: (seed: number) => Rng = prng;
export { normal };

/** Student-t with `nu` degrees of freedom: the heavy tails of real weight updates. */
function studentT(rng: Rng, nu: number): number {
  let chi = 0;
  for (let i = 0; i < nu; i++) chi += normal(rng) ** 2;
  return normal(rng) / Math.sqrt(chi / nu);
}

const uniform = (rng: Rng, lo: number, hi: number) => lo + (hi - lo) * rng();
const pick = <T>(rng: Rng, items: readonly T[]): T => items[Math.floor(rng() * items.length)];
const logUniform = (rng: Rng, lo: number, hi: number) => Math.exp(uniform(rng, Math.log(lo), Math.log(hi)));

export type StoredDtype = 'F32' | 'BF16' | 'F16';

export interface TensorShape {
  name: string;
  shape: number[];
  /** Norm weights (around 1) and biases (around 0) are initialised differently from matrices. */
  role: 'matrix' | 'norm' | 'bias';
  /** Modules a LoRA targets (q/v projections, gpt2's fused c_attn). */
  loraTarget: boolean;
}

export interface Architecture {
  name: string;
  tensors: TensorShape[];
}

function llamaLike(hidden: number, layers: number, vocab: number): Architecture {
  const inner = Math.round((hidden * 8) / 3 / 8) * 8;
  const t: TensorShape[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, hidden], role: 'matrix', loraTarget: false }];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    for (const m of ['q', 'k', 'v', 'o']) t.push({ name: `${p}.self_attn.${m}_proj.weight`, shape: [hidden, hidden], role: 'matrix', loraTarget: m === 'q' || m === 'v' });
    t.push({ name: `${p}.mlp.gate_proj.weight`, shape: [inner, hidden], role: 'matrix', loraTarget: false });
    t.push({ name: `${p}.mlp.up_proj.weight`, shape: [inner, hidden], role: 'matrix', loraTarget: false });
    t.push({ name: `${p}.mlp.down_proj.weight`, shape: [hidden, inner], role: 'matrix', loraTarget: false });
    t.push({ name: `${p}.input_layernorm.weight`, shape: [hidden], role: 'norm', loraTarget: false });
    t.push({ name: `${p}.post_attention_layernorm.weight`, shape: [hidden], role: 'norm', loraTarget: false });
  }
  t.push({ name: 'model.norm.weight', shape: [hidden], role: 'norm', loraTarget: false });
  t.push({ name: 'lm_head.weight', shape: [vocab, hidden], role: 'matrix', loraTarget: false });
  return { name: `llama-h${hidden}-l${layers}`, tensors: t };
}

function gpt2Like(hidden: number, layers: number, vocab: number): Architecture {
  const t: TensorShape[] = [
    { name: 'transformer.wte.weight', shape: [vocab, hidden], role: 'matrix', loraTarget: false },
    { name: 'transformer.wpe.weight', shape: [32, hidden], role: 'matrix', loraTarget: false },
  ];
  for (let i = 0; i < layers; i++) {
    const p = `transformer.h.${i}`;
    t.push({ name: `${p}.ln_1.weight`, shape: [hidden], role: 'norm', loraTarget: false });
    t.push({ name: `${p}.ln_1.bias`, shape: [hidden], role: 'bias', loraTarget: false });
    t.push({ name: `${p}.attn.c_attn.weight`, shape: [hidden, 3 * hidden], role: 'matrix', loraTarget: true });
    t.push({ name: `${p}.attn.c_attn.bias`, shape: [3 * hidden], role: 'bias', loraTarget: false });
    t.push({ name: `${p}.attn.c_proj.weight`, shape: [hidden, hidden], role: 'matrix', loraTarget: false });
    t.push({ name: `${p}.ln_2.weight`, shape: [hidden], role: 'norm', loraTarget: false });
    t.push({ name: `${p}.ln_2.bias`, shape: [hidden], role: 'bias', loraTarget: false });
    t.push({ name: `${p}.mlp.c_fc.weight`, shape: [hidden, 4 * hidden], role: 'matrix', loraTarget: false });
    t.push({ name: `${p}.mlp.c_proj.weight`, shape: [4 * hidden, hidden], role: 'matrix', loraTarget: false });
  }
  t.push({ name: 'transformer.ln_f.weight', shape: [hidden], role: 'norm', loraTarget: false });
  t.push({ name: 'transformer.ln_f.bias', shape: [hidden], role: 'bias', loraTarget: false });
  return { name: `gpt2-h${hidden}-l${layers}`, tensors: t };
}

const numelOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export type Weights = Float32Array[];

export interface ZooModel {
  /** Path relative to the zoo root: a model folder (holding model.safetensors) or a .safetensors file. */
  path: string;
  arch: Architecture;
  dtype: StoredDtype;
  /** Per tensor of arch, the stored values (already rounded to dtype). */
  weights: Weights;
  /** Index of the family (independent pretraining) it belongs to; unrelated models have their own. */
  family: number;
}

export type MergeMethod = 'linear' | 'task_arithmetic' | 'ties' | 'dare' | 'slerp';

export interface TrueMerge {
  child: string;
  parents: string[];
  /** The model task vectors are taken over (task arithmetic, TIES, DARE). */
  base?: string;
  method: MergeMethod;
  /** Per parent: its weight (linear), lambda x weight (task arithmetic, DARE), weight (TIES), t (SLERP: [1 - t, t]). */
  coefficients: number[];
}

export interface TrueEdge {
  parent: string;
  child: string;
  relation: 'finetune' | 'merge' | 'adapter' | 'quantized' | 'copy';
}

export interface ZooTruth {
  /** Every true link between distinct files (byte-identical copies excluded: they are one node). */
  edges: TrueEdge[];
  merges: TrueMerge[];
  /** Higher -> lower precision (relation quantized). */
  casts: { source: string; cast: string }[];
  /** Byte-identical copies: one node with two locations. */
  copies: { original: string; copy: string }[];
  adapters: { parent: string; child: string; rank: number }[];
  /** Models of a zoo's architecture that share no ancestry with anything else. */
  unrelated: string[];
}

export interface Zoo {
  seed: number;
  models: ZooModel[];
  truth: ZooTruth;
}

/** Values as a file of `dtype` holds them (torch's round-to-nearest-even). */
export function roundTo(dtype: StoredDtype, values: Float32Array): Float32Array {
  if (dtype === 'F32') return values;
  return Float32Array.from(decodeToFloat(dtype, encodeFromFloat32(dtype, values)));
}

const FOLDER_WORDS = ['data', 'exp', 'out', 'tmp', 'v2', 'final', 'try', 'misc', 'old', 'new', 'w', 'store', 'x', 'keep', 'dl', 'scratch'];

interface Options {
  /** Families per architecture, fine-tunes per family, etc. scale with it; 1 by default. */
  size?: number;
}

/** One zoo: one or two architectures, one or two families each, plus unrelated models. */
export function generateZoo(seed: number, options: Options = {}): Zoo {
  const rng = makeRng(seed * 7919 + 17);
  const size = options.size ?? 1;
  const models: ZooModel[] = [];
  const truth: ZooTruth = { edges: [], merges: [], casts: [], copies: [], adapters: [], unrelated: [] };
  const usedPaths = new Set<string>();
  const runDirs = new Set<string>();
  const sharedFolders: string[] = [];
  let family = 0;

  const newPath = (kind: 'model' | 'run', run?: { dir: string; step: number }): string => {
    for (;;) {
      let p: string;
      if (run) p = `${run.dir}/checkpoint-${run.step}`;
      else if (kind === 'run') p = `${pick(rng, FOLDER_WORDS)}/${pick(rng, FOLDER_WORDS)}-${Math.floor(rng() * 1e4).toString(36)}`;
      else if (rng() < 0.3) {
        // Loose files, several in one folder.
        if (sharedFolders.length === 0 || rng() < 0.3) sharedFolders.push(`${pick(rng, FOLDER_WORDS)}/${Math.floor(rng() * 1e5).toString(36)}`);
        p = `${pick(rng, sharedFolders)}/${Math.floor(rng() * 1e6).toString(36)}.safetensors`;
      } else {
        const depth = 1 + Math.floor(rng() * 3);
        const parts: string[] = [];
        for (let i = 0; i < depth; i++) parts.push(pick(rng, FOLDER_WORDS));
        parts.push(`m${Math.floor(rng() * 1e6).toString(36)}`);
        p = parts.join('/');
      }
      // No model inside another model's folder, no two models at one path (a run folder holds its checkpoints).
      const clash = [...usedPaths].some((u) => u === p || p.startsWith(`${u}/`) || u.startsWith(`${p}/`));
      if (!clash && kind === 'run' && !run && !runDirs.has(p)) {
        runDirs.add(p);
        return p;
      }
      if (!clash) {
        usedPaths.add(p);
        return p;
      }
    }
  };

  const add = (arch: Architecture, dtype: StoredDtype, weights: Weights, fam: number, p: string): ZooModel => {
    const model: ZooModel = { path: p, arch, dtype, weights: weights.map((w) => roundTo(dtype, w)), family: fam };
    models.push(model);
    return model;
  };

  const init = (arch: Architecture): Weights => arch.tensors.map((t) => {
    const n = numelOf(t.shape);
    const out = new Float32Array(n);
    const scale = t.role === 'matrix' ? 0.02 * uniform(rng, 0.6, 1.6) : t.role === 'bias' ? 0.01 : 0.1;
    const nu = 4 + Math.floor(rng() * 6);
    for (let k = 0; k < n; k++) out[k] = (t.role === 'norm' ? 1 : 0) + scale * studentT(rng, nu);
    return out;
  });

  /** A heavy-tailed update of relative size `relative` per tensor (varying by layer); `only` limits it to some tensors. */
  const update = (arch: Architecture, from: Weights, relative: number, only?: Set<number>): Weights => from.map((w, i) => {
    if (only && !only.has(i)) return w;
    const rms = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length) || 1;
    const scale = relative * rms * Math.exp(0.5 * normal(rng)) * (arch.tensors[i].role === 'norm' ? 0.3 : 1);
    return w.map((x) => x + scale * studentT(rng, 3) / 1.7);
  });

  const combine = (arch: Architecture, parts: { w: Weights; c: number }[]): Weights =>
    arch.tensors.map((_, i) => {
      const out = new Float32Array(parts[0].w[i].length);
      for (let k = 0; k < out.length; k++) {
        let s = 0;
        for (const p of parts) s += p.c * p.w[i][k];
        out[k] = s;
      }
      return out;
    });

  const architectures: Architecture[] = [];
  const archCount = rng() < 0.5 ? 1 : 2;
  for (let a = 0; a < archCount; a++) {
    const hidden = pick(rng, [24, 32, 40, 48]);
    const vocab = pick(rng, [64, 80, 96]);
    architectures.push(rng() < 0.6 ? llamaLike(hidden, 2, vocab) : gpt2Like(hidden, 2, vocab));
  }

  for (const arch of architectures) {
    const families = Math.max(1, Math.round((rng() < 0.5 ? 1 : 2) * size));
    for (let f = 0; f < families; f++, family++) {
      const dtype: StoredDtype = rng() < 0.7 ? 'F32' : 'BF16';
      const base = add(arch, dtype, init(arch), family, newPath('model'));
      const finetunes: ZooModel[] = [];
      const leaves: ZooModel[] = [];
      const link = (parent: ZooModel, child: ZooModel, relation: TrueEdge['relation']) => truth.edges.push({ parent: parent.path, child: child.path, relation });

      const finetuneCount = Math.round((2 + Math.floor(rng() * 3)) * size);
      for (let k = 0; k < finetuneCount; k++) {
        // Mostly from the base; sometimes a second generation from an earlier fine-tune.
        const parent = finetunes.length > 0 && rng() < 0.2 ? pick(rng, finetunes) : base;
        let only: Set<number> | undefined;
        if (rng() < 0.3) {
          // Partial: the last layer and the head, or the attention only.
          only = new Set(arch.tensors.map((t, i) => ({ t, i })).filter(({ t }) => (rng() < 0.5 ? /\.1\.|lm_head|ln_f|model\.norm/.test(t.name) : /attn/.test(t.name))).map(({ i }) => i));
          if (only.size === 0) only = undefined;
        }
        const child = add(arch, dtype, update(arch, parent.weights, logUniform(rng, 0.01, 0.05), only), family, newPath('model'));
        link(parent, child, 'finetune');
        finetunes.push(child);
        leaves.push(child);
      }

      // A training run: steps along one direction plus fresh noise each step.
      if (rng() < 0.6) {
        const steps = 3 + Math.floor(rng() * 3);
        const named = rng() < 0.5;
        const dir = newPath('run');
        const direction = base.weights.map((w) => {
          const rms = Math.sqrt(w.reduce((sum, x) => sum + x * x, 0) / w.length);
          return w.map(() => (rms * studentT(rng, 4)) / 1.4);
        });
        const stepSize = logUniform(rng, 0.006, 0.02);
        let previous = base;
        for (let s = 1; s <= steps; s++) {
          const moved = combine(arch, [{ w: previous.weights, c: 1 }, { w: direction, c: stepSize }]);
          const weights = update(arch, moved, stepSize * 0.8);
          const checkpoint = add(arch, dtype, weights, family, named ? newPath('run', { dir, step: s * 500 }) : newPath('model'));
          link(previous, checkpoint, 'finetune');
          previous = checkpoint;
        }
        leaves.push(previous);
      }

      // Merges of two or three fine-tunes.
      const mergeCount = finetunes.length >= 2 ? Math.round((1 + Math.floor(rng() * 3)) * size) : 0;
      const methods: MergeMethod[] = ['linear', 'task_arithmetic', 'ties', 'dare', 'slerp'];
      for (let m = 0; m < mergeCount; m++) {
        const method = pick(rng, methods);
        const count = method === 'slerp' || finetunes.length < 3 || rng() < 0.6 ? 2 : 3;
        const pool = finetunes.filter((x) => truth.edges.some((e) => e.child === x.path && e.parent === base.path));
        if (pool.length < count) continue;
        const parents: ZooModel[] = [];
        while (parents.length < count) {
          const p = pick(rng, pool);
          if (!parents.includes(p)) parents.push(p);
        }
        const made = merge(method, arch, base, parents, rng);
        const child = add(arch, dtype, made.weights, family, newPath('model'));
        for (const p of parents) link(p, child, 'merge');
        if (made.overBase) link(base, child, 'merge');
        truth.merges.push({ child: child.path, parents: parents.map((p) => p.path), ...(made.overBase ? { base: base.path } : {}), method, coefficients: made.coefficients });
        leaves.push(child);
      }

      // A LoRA merged into the base or a fine-tune.
      if (rng() < 0.7) {
        const parent = rng() < 0.5 ? base : pick(rng, finetunes);
        const rank = pick(rng, [2, 4, 8]);
        const relative = logUniform(rng, 0.02, 0.08);
        const weights = parent.weights.map((w, i) => {
          const t = arch.tensors[i];
          if (!t.loraTarget) return w;
          const [rows, cols] = t.shape;
          const rms = Math.sqrt(w.reduce((s, x) => s + x * x, 0) / w.length);
          const A = Float64Array.from({ length: rank * cols }, () => normal(rng));
          const B = Float64Array.from({ length: rows * rank }, () => normal(rng));
          const scale = (relative * rms) / Math.sqrt(rank);
          const out = new Float32Array(w.length);
          for (let r = 0; r < rows; r++) {
            for (let c = 0; c < cols; c++) {
              let s = 0;
              for (let q = 0; q < rank; q++) s += B[r * rank + q] * A[q * cols + c];
              out[r * cols + c] = w[r * cols + c] + scale * s;
            }
          }
          return out;
        });
        const child = add(arch, dtype, weights, family, newPath('model'));
        link(parent, child, 'adapter');
        truth.adapters.push({ parent: parent.path, child: child.path, rank });
        leaves.push(child);
      }

      // A cast of a float32 model to bf16 or f16 (a leaf: what people publish).
      if (dtype === 'F32' && rng() < 0.8) {
        const source = pick(rng, [base, ...leaves]);
        const cast = add(arch, rng() < 0.6 ? 'BF16' : 'F16', source.weights, family, newPath('model'));
        link(source, cast, 'quantized');
        truth.casts.push({ source: source.path, cast: cast.path });
      }

      // A byte-identical copy.
      if (rng() < 0.4) {
        const original = pick(rng, [base, ...leaves]);
        const copy: ZooModel = { ...original, path: newPath('model') };
        models.push(copy);
        truth.copies.push({ original: original.path, copy: copy.path });
      }
    }

    // Unrelated models of the same shapes.
    const strangers = Math.floor(rng() * 3);
    for (let s = 0; s < strangers; s++, family++) {
      const stranger = add(arch, rng() < 0.7 ? 'F32' : 'BF16', init(arch), family, newPath('model'));
      truth.unrelated.push(stranger.path);
    }
  }
  return { seed, models, truth };
}

/** Merges with mergekit's formulas; d_i = parent_i - base. */
function merge(method: MergeMethod, arch: Architecture, base: ZooModel, parents: ZooModel[], rng: Rng): { weights: Weights; coefficients: number[]; overBase: boolean } {
  const n = parents.length;
  if (method === 'linear') {
    const raw = parents.map(() => uniform(rng, 0.2, 1));
    const total = raw.reduce((a, b) => a + b, 0);
    const c = raw.map((x) => x / total);
    return { weights: arch.tensors.map((_, i) => base.weights[i].map((__, k) => parents.reduce((s, p, j) => s + c[j] * p.weights[i][k], 0))), coefficients: c, overBase: false };
  }
  if (method === 'slerp') {
    const t = uniform(rng, 0.2, 0.8);
    const weights = arch.tensors.map((_, i) => {
      const a = parents[0].weights[i];
      const b = parents[1].weights[i];
      let na = 0;
      let nb = 0;
      let dot = 0;
      for (let k = 0; k < a.length; k++) {
        na += a[k] * a[k];
        nb += b[k] * b[k];
        dot += a[k] * b[k];
      }
      const cos = Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb || 1)));
      // mergekit interpolates linearly when the tensors are nearly colinear.
      if (Math.abs(cos) > 0.9995) return a.map((x, k) => (1 - t) * x + t * b[k]);
      const theta = Math.acos(cos);
      const s0 = Math.sin((1 - t) * theta) / Math.sin(theta);
      const s1 = Math.sin(t * theta) / Math.sin(theta);
      return a.map((x, k) => s0 * x + s1 * b[k]);
    });
    return { weights, coefficients: [1 - t, t], overBase: false };
  }
  const deltas = parents.map((p) => p.weights.map((w, i) => w.map((x, k) => x - base.weights[i][k])));
  if (method === 'task_arithmetic') {
    const lambda = parents.map(() => uniform(rng, 0.3, 1));
    return {
      weights: arch.tensors.map((_, i) => base.weights[i].map((x, k) => x + deltas.reduce((s, d, j) => s + lambda[j] * d[i][k], 0))),
      coefficients: lambda,
      overBase: true,
    };
  }
  if (method === 'dare') {
    // dare_linear: drop each delta element with probability p, rescale the rest by 1 / (1 - p).
    const p = uniform(rng, 0.3, 0.7);
    const w = parents.map(() => uniform(rng, 0.4, 1));
    const weights = arch.tensors.map((_, i) => base.weights[i].map((x, k) => {
      let s = 0;
      for (let j = 0; j < n; j++) if (rng() >= p) s += (w[j] * deltas[j][i][k]) / (1 - p);
      return x + s;
    }));
    return { weights, coefficients: w, overBase: true };
  }
  // TIES: keep the top-density share of each delta by magnitude, elect a sign per element (sum of
  // trimmed weighted deltas), average the agreeing ones weighted (normalised), times lambda.
  const density = uniform(rng, 0.3, 0.7);
  const w = parents.map(() => uniform(rng, 0.4, 1));
  const lambda = uniform(rng, 0.7, 1.2);
  const weights = arch.tensors.map((_, i) => {
    const trimmed = deltas.map((d) => {
      const magnitudes = Array.from(d[i], Math.abs).sort((a, b) => b - a);
      const cut = magnitudes[Math.max(0, Math.ceil(density * magnitudes.length) - 1)];
      return d[i].map((x) => (Math.abs(x) >= cut ? x : 0));
    });
    return base.weights[i].map((x, k) => {
      let elected = 0;
      for (let j = 0; j < n; j++) elected += w[j] * trimmed[j][k];
      let sum = 0;
      let divisor = 0;
      for (let j = 0; j < n; j++) {
        const v = trimmed[j][k];
        if (v !== 0 && Math.sign(v) === Math.sign(elected)) {
          sum += w[j] * v;
          divisor += w[j];
        }
      }
      return x + (divisor > 0 ? (lambda * sum) / divisor : 0);
    });
  });
  return { weights, coefficients: w, overBase: true };
}

/** Writes every model with the project's safetensors writer (and a config.json in model folders). */
export async function writeZoo(root: string, zoo: Zoo): Promise<void> {
  for (const model of zoo.models) {
    const file = model.path.endsWith('.safetensors') ? path.join(root, model.path) : path.join(root, model.path, 'model.safetensors');
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tensors = model.arch.tensors.map((t, i) => ({ name: t.name, dtype: model.dtype, shape: t.shape, data: encodeFromFloat32(model.dtype, model.weights[i]) }));
    await writeSafetensors(file, tensors);
    if (!model.path.endsWith('.safetensors')) {
      const type = model.arch.name.startsWith('llama') ? { model_type: 'llama', architectures: ['LlamaForCausalLM'] } : { model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] };
      fs.writeFileSync(path.join(root, model.path, 'config.json'), JSON.stringify({ ...type, torch_dtype: model.dtype === 'F32' ? 'float32' : model.dtype === 'BF16' ? 'bfloat16' : 'float16' }));
    }
  }
}
