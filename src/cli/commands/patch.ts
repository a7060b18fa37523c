// `graft patch extract|apply|info`: weight patches (a fine-tune's difference from its base as a
// safetensors file) that can be added, scaled, removed (scale -1) and composed.
import * as path from 'node:path';
import packageJson from '../../../package.json';
import { formatBytes } from '../../core/format';
import { applyPatches, extractPatch, PATCH_DTYPES, patchLayerNorms, readPatch } from '../../core/patch';
import type { DType } from '../../core/safetensors';
import { displayPath, existingPath, openCheckpointArgument, parseCommandLine } from '../args';
import { UsageError, type CliCommand, type CliContext } from '../context';
import { writeJson } from '../output';

const USAGE = `Usage: graft patch extract <model> --base <base> --out <patch.safetensors> [--dtype D] [--density p] [--force] [--json]
       graft patch apply <model> <patch...> [--scale s ...] --out <dir> [--force] [--json]
       graft patch info <patch> [--json]

extract  d = model - base for every tensor that differs (unchanged ones are left out), stored
         as --dtype (F32, F16, BF16 or F64; default: the model's); --density p keeps each
         tensor's top p share of differences by magnitude. The metadata records both models'
         weight identities.
apply    model + sum s_i d_i in one streamed pass (--scale once per patch, in order, default 1;
         --scale -1 removes a patch). A patch made against other weights than the model's is
         refused unless --force, which then reports how far the model is from the patch's base.
info     the patch's base, source, tensors, density and norms per layer.

Options:
  --out <path>    output patch file (extract) or model folder (apply); never replaced without --force
  --workers N     worker threads (default: one per core)
  --json          print the result as JSON`;

function parseWorkers(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`--workers takes a whole number of threads (1 or more), not "${value}".`);
  return Number(value);
}

function number(value: string, option: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${option} takes a number, not "${value}".`);
  return n;
}

function progress(ctx: CliContext, what: string, json: boolean): (fraction: number) => void {
  let last = -1;
  return (fraction) => {
    const decile = Math.floor(fraction * 10);
    if (json || decile <= last) return;
    last = decile;
    ctx.stderr(`${what}: ${decile * 10}%\n`);
  };
}

async function extract(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    base: { type: 'string' }, out: { type: 'string' }, dtype: { type: 'string' }, density: { type: 'string' },
    force: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, workers: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the fine-tuned model to extract the difference of.' : `expected one model, got ${positionals.length}: ${positionals.join(' ')}.`);
  if (!values.base) throw new UsageError('give the model\'s base with --base <base>.');
  if (!values.out) throw new UsageError('give the patch file to write with --out <patch.safetensors>.');
  const dtype = values.dtype?.toUpperCase();
  if (dtype !== undefined && !PATCH_DTYPES.includes(dtype as DType)) throw new UsageError(`--dtype takes ${PATCH_DTYPES.join(', ')}, not "${values.dtype}".`);
  const density = values.density !== undefined ? number(values.density, '--density') : undefined;
  if (density !== undefined && !(density > 0 && density <= 1)) throw new UsageError(`--density takes the share of elements to keep, above 0 and at most 1, not "${values.density}".`);
  const model = await openCheckpointArgument(await existingPath(positionals[0], ctx), positionals[0]);
  const base = await openCheckpointArgument(await existingPath(values.base, ctx), values.base);
  const workers = parseWorkers(values.workers);
  const result = await extractPatch({
    runner: ctx.runner(workers), model, base, out: path.resolve(ctx.cwd, values.out), dtype: dtype as DType | undefined, density, force: values.force,
    signal: ctx.signal, onProgress: progress(ctx, 'extract', values.json), graftVersion: packageJson.version,
  });
  if (values.json) {
    writeJson(ctx.stdout, { out: result.out, tensors: result.tensors, unchanged: result.unchanged, elements: result.elements, kept: result.kept, inexact: result.inexact, bytes: result.bytes, base_weights: result.baseWeights, source_weights: result.sourceWeights });
    return 0;
  }
  const lines = [
    `Wrote ${displayPath(result.out, ctx.cwd)}: ${result.tensors} changed tensors (${result.unchanged} unchanged left out), ${formatBytes(result.bytes)}.`,
    `Stored ${result.kept.toLocaleString('en-US')} of ${result.elements.toLocaleString('en-US')} elements non-zero (${((result.kept / Math.max(1, result.elements)) * 100).toFixed(1)}%).`,
  ];
  if (result.inexact > 0) {
    lines.push(`Note: for ${result.inexact.toLocaleString('en-US')} stored elements, base + patch differs from the model by the patch dtype's rounding; --dtype F64 (or F32 for 16-bit models) stores the difference exactly.`);
  }
  ctx.stdout(lines.join('\n') + '\n');
  return 0;
}

async function apply(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    out: { type: 'string' }, scale: { type: 'string', multiple: true }, force: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, workers: { type: 'string' },
  });
  if (positionals.length < 2) throw new UsageError('give the model, then one or more patches: graft patch apply <model> <patch...> --out <dir>.');
  if (!values.out) throw new UsageError('give the output folder with --out <dir>.');
  const scales = (values.scale ?? []).map((s) => number(s, '--scale'));
  const patchArgs = positionals.slice(1);
  if (scales.length > patchArgs.length) throw new UsageError(`${scales.length} --scale values for ${patchArgs.length} patch${patchArgs.length === 1 ? '' : 'es'}: give at most one per patch, in order.`);
  const model = await openCheckpointArgument(await existingPath(positionals[0], ctx), positionals[0]);
  const patches = await Promise.all(patchArgs.map(async (arg, i) => ({ info: await readPatch(await existingPath(arg, ctx)), scale: scales[i] ?? 1 })));
  const result = await applyPatches({
    runner: ctx.runner(parseWorkers(values.workers)), model, patches, out: path.resolve(ctx.cwd, values.out), force: values.force,
    signal: ctx.signal, onProgress: progress(ctx, 'apply', values.json), graftVersion: packageJson.version,
  });
  if (values.json) {
    writeJson(ctx.stdout, {
      out: result.out, tensors: result.tensors, patched_tensors: result.patchedTensors, bytes: result.bytes, seconds: result.seconds, model_weights: result.modelWeights,
      base_mismatch: result.mismatched.map((m) => ({ patch: m.patch, base: m.base, base_weights: m.baseWeights, relative_distance_at_least: m.relativeDistanceAtLeast })),
    });
    return 0;
  }
  const lines = [`Applied ${patches.length} patch${patches.length === 1 ? '' : 'es'} (${patches.map((p) => `${displayPath(p.info.file, ctx.cwd)} x ${p.scale}`).join(', ')}) to ${result.patchedTensors} of ${result.tensors} tensors into ${displayPath(result.out, ctx.cwd)}.`];
  for (const m of result.mismatched) {
    lines.push(`Warning: ${displayPath(m.patch, ctx.cwd)} was made against "${m.base}" (weights ${m.baseWeights}), not this model (weights ${result.modelWeights}); over the patched tensors the model is at least ${(m.relativeDistanceAtLeast * 100).toFixed(2)}% away from that base (relative L2, from the norms the patch records).`);
  }
  ctx.stdout(lines.join('\n') + '\n');
  return 0;
}

async function info(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandLine(args, { json: { type: 'boolean', default: false } });
  if (positionals.length !== 1) throw new UsageError('give one patch file.');
  const patch = await readPatch(await existingPath(positionals[0], ctx));
  const layers = patchLayerNorms(patch);
  if (values.json) {
    writeJson(ctx.stdout, {
      file: patch.file, base: patch.base, base_weights: patch.baseWeights, source: patch.source, source_weights: patch.sourceWeights, tensors: patch.tensors,
      density: patch.density, kept: patch.kept, dtype: patch.dtype, bytes: patch.layout.bytes, layers,
    });
    return 0;
  }
  const lines = [
    `Patch: ${displayPath(patch.file, ctx.cwd)} (${formatBytes(patch.layout.bytes)}, ${patch.dtype})`,
    `Base: ${patch.base} (weights ${patch.baseWeights})`,
    `Source: ${patch.source} (weights ${patch.sourceWeights})`,
    `Tensors: ${patch.tensors}`,
    `Density: ${patch.density}${Number.isFinite(patch.kept) ? ` (${(patch.kept * 100).toFixed(1)}% of elements stored non-zero)` : ''}`,
    '',
    'Layer            tensors  ||d||        ||d||/||base||',
    ...layers.map((l) => `${(l.layer === null ? l.group : `${l.group} ${l.layer}`).padEnd(16)} ${String(l.tensors).padStart(7)}  ${l.norm.toExponential(4).padEnd(12)} ${l.relative === null ? 'n/a' : l.relative.toExponential(4)}`),
  ];
  ctx.stdout(lines.join('\n') + '\n');
  return 0;
}

export const patchCommand: CliCommand = {
  name: 'patch',
  summary: 'extract, apply (add, scale, remove, compose) and inspect weight patches',
  usage: USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub === 'extract') return extract(rest, ctx);
    if (sub === 'apply') return apply(rest, ctx);
    if (sub === 'info') return info(rest, ctx);
    throw new UsageError(sub ? `unknown patch command "${sub}"; use extract, apply or info.` : 'give a patch command: extract, apply or info.');
  },
};
