// `graft transfer --finetune X --from B --to B2 --out <dir>`: fine-tuning transfer, B2 + s (X - B),
// after a linear-connectivity report (printed first; --check prints only the report).
import * as path from 'node:path';
import packageJson from '../../../package.json';
import { fixedNoNegativeZero, formatBytes } from '../../core/format';
import { RecipeError } from '../../core/merge';
import { connectivityReport, prepareTransfer, runTransfer, type ConnectivityReport } from '../../core/transfer';
import { displayPath, existingPath, openCheckpointArgument, parseCommandLine } from '../args';
import { UsageError, type CliCommand, type CliContext } from '../context';
import { writeJson } from '../output';

const USAGE = `Usage: graft transfer --finetune <X> --from <B> --to <B2> --out <dir> [--scale s] [--check] [--force] [--json] [--workers N]

Moves a fine-tune X of base B onto a new base version B2: B2 + s (X - B) (s defaults to 1).
First prints a linear-connectivity report: per layer, the cosine between the base update
(B2 - B) and the fine-tune diff (X - B), their norms relative to B, the share of tensors whose
names or shapes changed between B and B2, and a verdict (likely safe / risky / not applicable).
The transfer runs as a diff_transfer recipe written beside the output (<dir>.transfer.yml),
which \`graft merge\` can rerun. A "not applicable" verdict stops before anything is written.

Options:
  --check      print the report only; write nothing
  --force      replace an existing output (and its recipe) once the new one is complete
  --json       print the report (and the result) as JSON`;

const VERDICT_TEXT = { 'likely-safe': 'transfer likely safe', risky: 'transfer risky', 'not-applicable': 'transfer not applicable' } as const;

function fmt(x: number | null): string {
  return x === null ? 'n/a' : x.toFixed(4);
}

export function reportText(report: ConnectivityReport, cwd: string): string {
  const lines = [
    `Fine-tune ${displayPath(report.finetune, cwd)} from ${displayPath(report.from, cwd)} onto ${displayPath(report.to, cwd)}`,
    '',
    'Layer            tensors  cos(B2-B, X-B)  |B2-B|/|B|  |X-B|/|B|',
    ...report.layers.map((l) => `${(l.layer === null ? l.group : `${l.group} ${l.layer}`).padEnd(16)} ${String(l.tensors).padStart(7)}  ${fixedNoNegativeZero(l.cosine, 4).padStart(14)}  ${fmt(l.baseUpdate).padStart(10)}  ${fmt(l.finetuneDiff).padStart(9)}`),
    `${'all'.padEnd(16)} ${String(report.layers.reduce((n, l) => n + l.tensors, 0)).padStart(7)}  ${fixedNoNegativeZero(report.overall.cosine, 4).padStart(14)}  ${fmt(report.overall.baseUpdate).padStart(10)}  ${fmt(report.overall.finetuneDiff).padStart(9)}`,
    `Tensors whose name or shape changed between the bases: ${report.structure.changed} of ${report.structure.tensors} (${(report.structure.share * 100).toFixed(1)}%)`,
    '',
    `Verdict: ${VERDICT_TEXT[report.verdict]}.`,
    ...report.reasons.map((r) => `  ${r}`),
    ...report.warnings.map((w) => `Warning: ${w}`),
  ];
  return lines.join('\n') + '\n';
}

export const transferCommand: CliCommand = {
  name: 'transfer',
  summary: 'move a fine-tune onto a new base version (B2 + s (X - B)) after a connectivity check',
  usage: USAGE,
  async run(args: string[], ctx: CliContext) {
    const { values, positionals } = parseCommandLine(args, {
      finetune: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, out: { type: 'string' }, scale: { type: 'string' },
      check: { type: 'boolean', default: false }, force: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, workers: { type: 'string' },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; name the models with --finetune, --from and --to.`);
    for (const key of ['finetune', 'from', 'to'] as const) if (!values[key]) throw new UsageError(`give --${key} <model>.`);
    if (!values.check && !values.out) throw new UsageError('give the output folder with --out <dir> (or --check for the report only).');
    const scale = values.scale !== undefined ? Number(values.scale) : 1;
    if (values.scale !== undefined && (values.scale.trim() === '' || !Number.isFinite(scale))) throw new UsageError(`--scale takes a number, not "${values.scale}".`);
    if (values.workers !== undefined && !/^[1-9]\d*$/.test(values.workers)) throw new UsageError(`--workers takes a whole number of threads (1 or more), not "${values.workers}".`);
    const workers = values.workers !== undefined ? Number(values.workers) : undefined;
    const paths = {
      finetune: await existingPath(values.finetune!, ctx), from: await existingPath(values.from!, ctx), to: await existingPath(values.to!, ctx),
    };
    const layouts = {
      finetune: await openCheckpointArgument(paths.finetune, values.finetune!), from: await openCheckpointArgument(paths.from, values.from!), to: await openCheckpointArgument(paths.to, values.to!),
    };
    const runner = ctx.runner(workers);
    const report = await connectivityReport(runner, layouts, { signal: ctx.signal });
    if (!values.json) ctx.stdout(reportText(report, ctx.cwd));
    if (values.check || report.verdict === 'not-applicable') {
      if (values.json) writeJson(ctx.stdout, { report });
      if (report.verdict === 'not-applicable' && !values.check) ctx.stderr('graft transfer: not run, since the transfer is not applicable to these models (see the reasons above).\n');
      return report.verdict === 'not-applicable' && !values.check ? 1 : 0;
    }
    const out = path.resolve(ctx.cwd, values.out!);
    try {
      const run = await prepareTransfer({ ...paths, out, scale }, values.force);
      const result = await runTransfer(run, { runner, out, force: values.force, signal: ctx.signal, graftVersion: packageJson.version });
      if (values.json) {
        writeJson(ctx.stdout, { report, out: result.out, recipe: run.recipeFile, tensors: result.tensors, bytes: result.bytes, seconds: result.seconds });
      } else {
        ctx.stdout(`\nTransferred into ${displayPath(result.out, ctx.cwd)} (${result.tensors} tensors, ${formatBytes(result.bytes)}); recipe: ${displayPath(run.recipeFile, ctx.cwd)}.\n`);
      }
      return 0;
    } catch (error) {
      if (error instanceof RecipeError) throw new Error(error.problems.map((p) => p.message).join('\n'));
      throw error;
    }
  },
};
