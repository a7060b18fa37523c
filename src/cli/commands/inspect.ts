// `graft inspect`: the tensors of a checkpoint (name, dtype, shape, file), its metadata and size,
// and with --stats per-tensor statistics computed on the worker pool.

import * as path from 'node:path';
import { maxOf } from '../../core/collections';
import { mapLimit } from '../../core/engine/pool';
import { formatBytes, formatCount, formatParameters, formatShape } from '../../core/format';
import { canDecode, type CheckpointLayout, type DType, type TensorRef } from '../../core/safetensors';
import { computeTensorStats, type TensorStats } from '../../core/stats';
import { escapeControl } from '../../core/text';
import type { CliCommand, CliContext } from '../context';
import { openCheckpointArgument, parseCommandLine, pathArgument } from '../args';
import { writeJson, writeLines } from '../output';

const USAGE = `Usage: graft inspect <file.safetensors | folder | *.safetensors.index.json> [--json] [--stats]

Lists the tensors of a checkpoint with dtype, shape and file, the metadata, the parameter count
and the size. Reads headers only, unless --stats is given.

Options:
  --json    print {"path", "format", "tensors", "metadata", "parameters", "bytes"} as JSON
  --stats   add min, max, mean, std (over finite values), zeros, nan and inf per tensor
            (reads every tensor, in parallel on worker threads)`;

/** Per-tensor statistics in `--json --stats` output: the core's, without the element count. */
export type InspectTensorStats = Omit<TensorStats, 'count' | 'histogram'>;

export interface InspectTensor {
  name: string;
  dtype: DType;
  /** Exact: dimensions past 2^53 (zero-size tensors only) are bigints, printed as exact JSON integers. */
  shape: (number | bigint)[];
  file: string;
  /** With --stats: null when the dtype cannot be decoded (statsError says why). */
  stats?: InspectTensorStats | null;
  statsError?: string;
}

export interface InspectReport {
  path: string;
  format: CheckpointLayout['format'];
  files: string[];
  tensors: InspectTensor[];
  metadata: Record<string, unknown> | null;
  parameters: number;
  bytes: number;
  warnings?: string[];
}

function pickStats(s: TensorStats): InspectTensorStats {
  return { min: s.min, max: s.max, mean: s.mean, std: s.std, zeros: s.zeros, nan: s.nan, inf: s.inf };
}

async function statsFor(ctx: CliContext, tensors: readonly TensorRef[]): Promise<(InspectTensorStats | string)[]> {
  const runner = ctx.runner();
  // Several tensors at once: most are small and fit one task, which would leave workers idle.
  return mapLimit(
    tensors,
    runner.concurrency,
    async (ref) => (canDecode(ref.dtype) ? pickStats(await computeTensorStats(runner, ref, { signal: ctx.signal })) : `${ref.dtype} values cannot be decoded`),
    ctx.signal,
  );
}

/** Builds the report (and computes statistics when asked). */
export async function inspectTarget(target: string, ctx: CliContext, withStats: boolean, shownAs = target): Promise<InspectReport> {
  const layout = await openCheckpointArgument(target, shownAs);
  const stats = withStats ? await statsFor(ctx, layout.tensors) : [];
  const tensors = layout.tensors.map((t, i): InspectTensor => {
    const entry: InspectTensor = { name: t.name, dtype: t.dtype, shape: t.shapeText ? t.shapeText.map(BigInt) : t.shape, file: t.file };
    if (withStats) {
      const s = stats[i];
      if (typeof s === 'string') {
        entry.stats = null;
        entry.statsError = s;
      } else {
        entry.stats = s;
      }
    }
    return entry;
  });
  const report: InspectReport = {
    path: layout.path,
    format: layout.format,
    files: layout.files,
    tensors,
    metadata: layout.metadata,
    parameters: layout.parameters,
    bytes: layout.bytes,
  };
  if (layout.warnings) report.warnings = layout.warnings;
  return report;
}

/** A statistic for a table cell: integers exactly while short, others in 4 significant digits. */
function formatStat(value: number | null): string {
  if (value === null) return '-';
  const magnitude = Math.abs(value);
  if (Number.isInteger(value) && magnitude < 1e7) return String(value);
  if (value === 0) return '0';
  if (magnitude >= 1e4 || magnitude < 1e-3) return value.toExponential(3);
  return String(Number(value.toPrecision(4)));
}

function table(header: string[], rows: string[][], rightAligned: Set<number>): string[] {
  const widths = header.map((h, c) => Math.max(h.length, maxOf(rows.map((r) => r[c].length), 0)));
  const line = (cells: string[]) =>
    cells
      .map((cell, c) => (rightAligned.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd();
  const lines = [line(header)];
  for (const row of rows) lines.push(line(row));
  return lines;
}

/** The report as text lines; every name and value from the file is escaped (see core/text.ts). */
function humanReport(report: InspectReport, numel: Map<string, number>): string[] {
  const multiFile = report.files.length > 1;
  const withStats = report.tensors.some((t) => t.stats !== undefined);
  const header = ['NAME', 'DTYPE', 'SHAPE', 'PARAMS'];
  if (multiFile) header.push('FILE');
  if (withStats) header.push('MIN', 'MAX', 'MEAN', 'STD', 'ZEROS', 'NAN', 'INF');
  const right = new Set([3]);
  if (withStats) for (let c = header.length - 7; c < header.length; c++) right.add(c);
  const rows = report.tensors.map((t) => {
    const row = [escapeControl(t.name), t.dtype, formatShape(t.shape), formatParameters(numel.get(t.name) ?? 0)];
    if (multiFile) row.push(escapeControl(path.basename(t.file)));
    if (withStats) {
      const s = t.stats;
      row.push(
        ...(s
          ? [formatStat(s.min), formatStat(s.max), formatStat(s.mean), formatStat(s.std), formatCount(s.zeros), formatCount(s.nan), formatCount(s.inf)]
          : ['n/a', '', '', '', '', '', '']),
      );
    }
    return row;
  });

  const byDtype = new Map<string, { tensors: number; parameters: number }>();
  for (const t of report.tensors) {
    const entry = byDtype.get(t.dtype) ?? { tensors: 0, parameters: 0 };
    entry.tensors++;
    entry.parameters += numel.get(t.name) ?? 0;
    byDtype.set(t.dtype, entry);
  }
  const dtypes = [...byDtype]
    .sort((a, b) => b[1].parameters - a[1].parameters)
    .map(([dtype, e]) => `${dtype} ${e.tensors} tensor${e.tensors === 1 ? '' : 's'} (${formatParameters(e.parameters)} params)`)
    .join(', ');

  const lines = [
    escapeControl(report.path),
    `format: ${report.format}${multiFile ? ` (${report.files.length} files)` : ''}`,
    '',
  ];
  if (report.tensors.length > 0) {
    for (const line of table(header, rows, right)) lines.push(line);
  } else lines.push('(no tensors)');
  lines.push(
    '',
    `${formatCount(report.tensors.length)} tensors, ${formatParameters(report.parameters)} parameters (${formatCount(report.parameters)}), ${formatBytes(report.bytes)}`,
  );
  if (dtypes) lines.push(`dtypes: ${dtypes}`);
  if (report.metadata && Object.keys(report.metadata).length > 0) {
    const shown = Object.entries(report.metadata).map(([k, v]) => escapeControl(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`));
    lines.push(`metadata: ${shown.join(', ')}`);
  }
  for (const t of report.tensors) if (t.statsError) lines.push(`note: ${escapeControl(t.name)}: ${t.statsError}`);
  for (const warning of report.warnings ?? []) lines.push(`warning: ${escapeControl(warning)}`);
  return lines;
}

export const inspectCommand: CliCommand = {
  name: 'inspect',
  summary: 'list the tensors, dtypes, shapes, metadata and size of a checkpoint (--stats for values)',
  usage: USAGE,
  async run(args, ctx) {
    const { values, positionals } = parseCommandLine(args, { json: { type: 'boolean' }, stats: { type: 'boolean' } });
    const target = await pathArgument(positionals, ctx, 'file or folder to inspect');
    const report = await inspectTarget(target, ctx, values.stats ?? false, positionals[0]);
    if (values.json) {
      writeJson(ctx.stdout, report);
    } else {
      const numel = new Map(report.tensors.map((t) => [t.name, t.shape.reduce<number>((a, b) => a * Number(b), 1)]));
      writeLines(ctx.stdout, humanReport(report, numel));
    }
    return 0;
  },
};
