// `graft merge <recipe.yml> --out <dir>`: runs a mergekit-style recipe on the worker pool, streaming
// tensors with bounded memory; `--plan` checks everything and prints what would be computed.
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import packageJson from '../../../package.json';
import { defaultHfCacheDir, scanCatalog } from '../../core/catalog';
import { describeFsError, readFileHead } from '../../core/files';
import { formatBytes, parseByteSize } from '../../core/format';
import {
  DEFAULT_SHARD_BYTES, executeMerge, checkOutput, MERGE_METHODS, parseRecipe, planMerge, RecipeError, type MergePlan, type MergeProgress, type ModelResolver,
} from '../../core/merge';
import { estimateMerge } from '../../core/merge/estimate';
import { catalogResolver } from '../../core/merge/resolve';
import { displayPath, parseCommandLine } from '../args';
import { UsageError, type CliCommand, type CliContext } from '../context';
import { writeJson } from '../output';
import { escapeControl } from '../../core/text';

function methodList(): string {
  return MERGE_METHODS.map((m) => {
    const params = [...m.parameters, ...m.tensorParameters].map((p) => `${p.name}${p.required ? '' : p.default !== undefined ? `=${p.default}` : '?'}`).join(', ');
    return `  ${m.name.padEnd(17)} ${m.summary}\n  ${''.padEnd(17)} parameters: ${params || 'none'}${m.base === 'required' ? '; needs base_model' : ''}`;
  }).join('\n');
}

const USAGE = `Usage: graft merge <recipe.yml> --out <dir> [--plan] [--json] [--force] [--workers N]
                   [--shard-size S] [--hf-cache <dir> | --no-hf-cache] [--keep-intermediates]

Runs a merge recipe in mergekit's YAML format (merge_method, base_model, models or slices,
parameters, dtype, out_dtype, tokenizer_source, random_seed; several documents with "name:"
for a multi-stage merge, fused in one pass). Models are paths relative to the recipe, hub ids
found in the recipe's folder or the Hugging Face cache, or model+adapter (a LoRA merged in).
Every check runs before any compute; the output is written to <dir>.partial and renamed when
complete, and an existing <dir> is never replaced without --force.

Options:
  --out <dir>           output folder (required unless --plan)
  --plan                check the recipe and print what would be computed; write nothing
  --json                print the result (or the error, with line and column) as JSON
  --force               replace an existing output folder once the new merge is complete
  --workers N           worker threads (default: one per core)
  --shard-size S        largest shard, e.g. 5GB (default), 500MB, or bytes
  --hf-cache <dir>      Hugging Face cache for hub ids (default: the usual cache, if present)
  --no-hf-cache         resolve hub ids in the recipe's folder only
  --keep-intermediates  also write every earlier stage of a multi-stage recipe to <dir>/intermediates/<name>

Methods:
${methodList()}`;

function parseSize(value: string): number {
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw new UsageError(`--shard-size takes a size such as 5GB, 500MB or a number of bytes, not "${value}".`);
  return bytes;
}

function parseWorkers(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new UsageError(`--workers takes a whole number of threads (1 or more), not "${value}".`);
  return Number(value);
}

function duration(seconds: number): string {
  if (seconds < 1) return `${Math.max(0.1, seconds).toFixed(1)} s`;
  if (seconds < 90) return `${seconds.toFixed(0)} s`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(0)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** Hub ids resolve through a catalog of the recipe's folder and the HF cache, scanned only when needed. */
function resolverFor(recipeDir: string, hfCache: string | null, signal: AbortSignal): ModelResolver {
  let resolver: Promise<ModelResolver> | undefined;
  return async (reference) => {
    resolver ??= (async () => {
      const cache = hfCache && (await fsp.stat(hfCache).then((s) => s.isDirectory(), () => false)) ? hfCache : null;
      return catalogResolver(await scanCatalog([recipeDir], { hfCache: cache, signal, maxDepth: 6 }));
    })();
    return (await resolver)(reference);
  };
}

function planText(plan: MergePlan, workers: number, shardBytes: number, cwd: string): string {
  const estimate = estimateMerge(plan, workers);
  const shards = Math.max(1, Math.ceil(plan.totals.outputBytes / shardBytes));
  const lines = [
    `Recipe: ${displayPath(plan.recipe.file, cwd)}${plan.stageNames.length > 1 ? ` (${plan.stageNames.length} stages fused: ${plan.stageNames.join(' -> ')})` : ''}`,
    `Method: ${plan.method}`,
    'Inputs:',
    ...plan.inputs.map((i) => `  ${i.reference}${i.kind === 'adapted' ? ' (LoRA merged in)' : ''}  ${formatBytes(i.bytes)}`),
    `Output: ${plan.totals.tensors} tensors, ${plan.totals.elements.toLocaleString('en-US')} elements, ${formatBytes(plan.totals.outputBytes)} in ${shards} shard${shards === 1 ? '' : 's'}`,
    ...(plan.layerCount !== undefined ? [`Layers: ${plan.layerCount}`] : []),
    `Peak memory: about ${formatBytes(estimate.peakBytes)} with ${workers} worker${workers === 1 ? '' : 's'}`,
    `Time: about ${duration(estimate.seconds)} (kernels calibrated here: ${Object.entries(estimate.rates).map(([m, r]) => `${m} ${(r / 1e6).toFixed(0)} M elements/s`).join(', ')})`,
    ...plan.warnings.map((w) => `Warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}

function progressReporter(ctx: CliContext, json: boolean): (p: MergeProgress) => void {
  const tty = process.stderr.isTTY;
  let lastPlain = -1;
  let lastTty = 0;
  return (p) => {
    const fraction = p.bytes > 0 ? p.bytesDone / p.bytes : 1;
    const eta = p.etaSeconds !== undefined ? `, ${duration(p.etaSeconds)} left` : '';
    const text = `${p.tensorsDone}/${p.tensors} tensors, ${formatBytes(p.bytesDone)} of ${formatBytes(p.bytes)}${eta}`;
    if (tty && !json) {
      const now = Date.now();
      if (now - lastTty < 100 && fraction < 1) return;
      lastTty = now;
      const width = 24;
      const filled = Math.round(fraction * width);
      ctx.stderr(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ${text}\u001b[K`);
      if (fraction >= 1 && p.tensorsDone === p.tensors) ctx.stderr('\n');
      return;
    }
    const decile = Math.floor(fraction * 10);
    if (decile > lastPlain) {
      lastPlain = decile;
      ctx.stderr(`merge: ${(fraction * 100).toFixed(0)}% (${text})\n`);
    }
  };
}

export const mergeCommand: CliCommand = {
  name: 'merge',
  summary: 'merge models from a mergekit-style recipe (plans first; streams with bounded memory)',
  usage: USAGE,
  async run(args, ctx) {
    const { values, positionals } = parseCommandLine(args, {
      out: { type: 'string' },
      plan: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      workers: { type: 'string' },
      'shard-size': { type: 'string' },
      'hf-cache': { type: 'string' },
      'no-hf-cache': { type: 'boolean', default: false },
      'keep-intermediates': { type: 'boolean', default: false },
    });
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the recipe file (a mergekit YAML).' : `expected one recipe, got ${positionals.length}: ${positionals.join(' ')}.`);
    if (!values.plan && !values.out) throw new UsageError('give the output folder with --out <dir> (or --plan to only check the recipe).');
    if (values['hf-cache'] !== undefined && values['no-hf-cache']) throw new UsageError('--hf-cache and --no-hf-cache contradict each other; give one.');
    const workers = parseWorkers(values.workers);
    const shardBytes = values['shard-size'] !== undefined ? parseSize(values['shard-size']) : DEFAULT_SHARD_BYTES;
    const file = path.resolve(ctx.cwd, positionals[0]);
    let text: string;
    try {
      text = await readFileHead(file, Math.max(1, (await fsp.stat(file)).size));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UsageError(code === 'ENOENT' ? `"${positionals[0]}" does not exist.` : code === 'EISDIR' ? `"${positionals[0]}" is a folder; give the recipe's .yml file.` : `cannot read "${positionals[0]}": ${describeFsError(error)}.`);
    }
    const out = values.out !== undefined ? path.resolve(ctx.cwd, values.out) : undefined;
    const hfCache = values['no-hf-cache'] ? null : values['hf-cache'] !== undefined ? path.resolve(ctx.cwd, values['hf-cache']) : defaultHfCacheDir(process.env, os.homedir());

    if (!values.plan) ctx.startRunner?.(workers);
    try {
      const recipe = parseRecipe(text, file);
      const plan = await planMerge(recipe, { out, resolveModel: resolverFor(path.dirname(file), hfCache, ctx.signal) });
      const poolSize = workers ?? ctx.runner().concurrency;
      if (values.plan) {
        if (out) await checkOutput(plan, out, values.force);
        if (values.json) {
          const estimate = estimateMerge(plan, poolSize);
          writeJson(ctx.stdout, {
            plan: {
              method: plan.method, stages: plan.stageNames, inputs: plan.inputs.map((i) => ({ reference: i.reference, paths: i.paths, bytes: i.bytes })),
              tensors: plan.totals.tensors, elements: plan.totals.elements, bytes: plan.totals.outputBytes, shards: Math.max(1, Math.ceil(plan.totals.outputBytes / shardBytes)),
              layers: plan.layerCount ?? null, peak_memory_bytes: estimate.peakBytes, estimated_seconds: estimate.seconds, warnings: plan.warnings,
            },
          });
        } else {
          ctx.stdout(planText(plan, poolSize, shardBytes, ctx.cwd).split('\n').map(escapeControl).join('\n'));
        }
        return 0;
      }
      for (const warning of plan.warnings) ctx.stderr(`graft merge: warning: ${escapeControl(warning)}\n`);
      const runner = workers !== undefined ? ctx.runner(workers) : ctx.runner();
      const onProgress = progressReporter(ctx, values.json);
      const result = await executeMerge(plan, { runner, out: out!, force: values.force, shardBytes, signal: ctx.signal, onProgress, graftVersion: packageJson.version });
      if (values['keep-intermediates'] && recipe.stages.length > 1) {
        // Each earlier stage as a model of its own, inside the finished output.
        for (let i = 0; i < recipe.stages.length - 1; i++) {
          const stagePlan = await planMerge({ ...recipe, stages: recipe.stages.slice(0, i + 1) }, { resolveModel: resolverFor(path.dirname(file), hfCache, ctx.signal) });
          await executeMerge(stagePlan, { runner, out: path.join(out!, 'intermediates', recipe.stages[i].name!.value), shardBytes, signal: ctx.signal, graftVersion: packageJson.version });
        }
      }
      const peak = process.resourceUsage().maxRSS * 1024;
      if (values.json) {
        writeJson(ctx.stdout, {
          out: result.out, tensors: result.tensors, bytes: result.bytes, seconds: result.seconds, peak_rss_bytes: peak, method: plan.method,
          inputs: plan.inputs.map((i) => ({ reference: i.reference, paths: i.paths })),
        });
      } else {
        ctx.stdout(`Merged ${result.tensors} tensors (${formatBytes(result.bytes)}) with ${plan.method} into ${escapeControl(displayPath(result.out, ctx.cwd))} in ${duration(result.seconds)}; peak memory ${formatBytes(peak)}.\n`);
      }
      return 0;
    } catch (error) {
      if (values.json && !(error instanceof UsageError)) {
        const e = error as Error;
        const payload = error instanceof RecipeError
          ? { kind: 'recipe', message: e.message, file: error.file, line: error.line, column: error.col, problems: error.problems.map((p) => ({ line: p.pos.line, column: p.pos.col, code: p.code, message: p.message })) }
          : { kind: e.name === 'CancelledError' ? 'cancelled' : 'merge', message: e.message };
        writeJson(ctx.stdout, { error: payload });
        return e.name === 'CancelledError' ? 130 : 1;
      }
      if (error instanceof RecipeError) {
        const where = (p: { pos: { line: number; col: number } }) => `${displayPath(error.file, ctx.cwd)}:${p.pos.line}:${p.pos.col}`;
        if (error.problems.length === 1) throw new Error(`${where(error.problems[0])}: ${error.problems[0].message}`);
        throw new Error(`${error.problems.length} problems in the recipe:\n${error.problems.map((p) => `  ${where(p)}: ${p.message}`).join('\n')}`);
      }
      throw error;
    }
  },
};

