// `graft lora extract <model> --base <base> --rank r --out <adapter dir>`: a dense fine-tune
// compressed into a PEFT LoRA adapter by truncated SVDs of its weight differences.
import * as path from 'node:path';
import packageJson from '../../../package.json';
import { extractLora } from '../../core/lora';
import type { DType } from '../../core/safetensors';
import { displayPath, existingPath, openCheckpointArgument, parseCommandLine } from '../args';
import { UsageError, type CliCommand, type CliContext } from '../context';
import { writeJson } from '../output';

const USAGE = `Usage: graft lora extract <model> --base <base> (--rank r | --energy e [--rank max]) --out <adapter dir>
                          [--dtype F32|BF16|F16] [--power-iterations q] [--seed n] [--force] [--json] [--workers N]

For every 2-D weight that changed (embeddings aside), a truncated SVD of model - base
(randomized range finder with q power iterations, default 2, in float64 on the worker pool),
saved as a PEFT adapter: adapter_model.safetensors with peft's names and adapter_config.json
(r, lora_alpha = r, target_modules, rank_pattern, base_model_name_or_path). --energy e keeps,
per module, the smallest rank holding that share of the difference's squared norm (at most
--rank, default 64). Changed 1-D tensors and embeddings go to modules_to_save; anything else
is reported. The report gives each module's rank, retained energy and relative error.`;

const DTYPES = ['F32', 'BF16', 'F16'];

async function extract(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parseCommandLine(args, {
    base: { type: 'string' }, out: { type: 'string' }, rank: { type: 'string' }, energy: { type: 'string' }, dtype: { type: 'string' },
    'power-iterations': { type: 'string' }, seed: { type: 'string' }, force: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, workers: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the fine-tuned model to extract an adapter from.' : `expected one model, got ${positionals.length}: ${positionals.join(' ')}.`);
  if (!values.base) throw new UsageError('give the model\'s base with --base <base>.');
  if (!values.out) throw new UsageError('give the adapter folder to write with --out <dir>.');
  if (values.rank === undefined && values.energy === undefined) throw new UsageError('give --rank r (a fixed rank) or --energy e (a share of each difference to keep, e.g. 0.9).');
  const whole = (value: string | undefined, option: string, fallback: number, min: number) => {
    if (value === undefined) return fallback;
    if (!/^\d+$/.test(value) || Number(value) < min) throw new UsageError(`${option} takes a whole number (${min} or more), not "${value}".`);
    return Number(value);
  };
  const rank = whole(values.rank, '--rank', 64, 1);
  const energy = values.energy !== undefined ? Number(values.energy) : undefined;
  if (energy !== undefined && !(energy > 0 && energy <= 1)) throw new UsageError(`--energy takes a share above 0 and at most 1, e.g. 0.9, not "${values.energy}".`);
  const dtype = values.dtype?.toUpperCase();
  if (dtype !== undefined && !DTYPES.includes(dtype)) throw new UsageError(`--dtype takes ${DTYPES.join(', ')}, not "${values.dtype}".`);
  const workers = values.workers !== undefined ? whole(values.workers, '--workers', 1, 1) : undefined;
  const model = await openCheckpointArgument(await existingPath(positionals[0], ctx), positionals[0]);
  const base = await openCheckpointArgument(await existingPath(values.base, ctx), values.base);
  const result = await extractLora({
    runner: ctx.runner(workers), model, base, out: path.resolve(ctx.cwd, values.out), rank, energy, dtype: dtype as DType | undefined,
    powerIterations: whole(values['power-iterations'], '--power-iterations', 2, 0), seed: whole(values.seed, '--seed', 0, 0), force: values.force, signal: ctx.signal, graftVersion: packageJson.version,
  });
  if (values.json) {
    writeJson(ctx.stdout, {
      out: result.out, r: result.r, modules: result.modules.map((m) => ({ module: m.module, shape: m.shape, rank: m.rank, retained_energy: m.retained, relative_error: m.relativeError })),
      modules_to_save: result.modulesToSave, not_carried: result.notCarried, unchanged: result.unchanged,
    });
    return 0;
  }
  const width = Math.max(6, ...result.modules.map((m) => m.module.length));
  const lines = [
    `Wrote the adapter ${displayPath(result.out, ctx.cwd)} (r ${result.r}, ${result.modules.length} LoRA modules, ${result.modulesToSave.length} saved whole, ${result.unchanged} tensors unchanged).`,
    '',
    `${'Module'.padEnd(width)}  rank  retained energy  relative error`,
    ...result.modules.map((m) => `${m.module.padEnd(width)}  ${String(m.rank).padStart(4)}  ${(m.retained * 100).toFixed(2).padStart(14)}%  ${m.relativeError.toFixed(4).padStart(14)}`),
  ];
  if (result.modulesToSave.length > 0) lines.push('', `Saved whole (modules_to_save): ${result.modulesToSave.join(', ')}`);
  for (const n of result.notCarried) lines.push(`Not carried: ${n.tensor} (${n.reason}).`);
  ctx.stdout(lines.join('\n') + '\n');
  return 0;
}

export const loraCommand: CliCommand = {
  name: 'lora',
  summary: 'extract a PEFT LoRA adapter from a dense fine-tune (truncated SVD of each difference)',
  usage: USAGE,
  async run(args, ctx) {
    const [sub, ...rest] = args;
    if (sub === 'extract') return extract(rest, ctx);
    throw new UsageError(sub ? `unknown lora command "${sub}"; use extract.` : 'give a lora command: extract.');
  },
};
