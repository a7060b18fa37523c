// `graft diff <a> <b> [--base <c>] [--json] [--quick] [--top N]`: what fine-tuning changed, and where.
import { appendAll, maxOf } from '../../core/collections';
import { diffCheckpoints } from '../../core/diff/diff';
import { summarizeLayers } from '../../core/diff/layers';
import type { DiffReport, TensorDiff } from '../../core/diff/types';
import type { CheckpointLayout } from '../../core/safetensors/types';
import { escapeControl } from '../../core/text';
import { displayPath, existingPath, openCheckpointArgument, parseCommandLine } from '../args';
import { UsageError, type CliCommand, type CliContext } from '../context';
import { writeJson, writeLines } from '../output';

const DEFAULT_TOP = 10;
const PROGRESS_INTERVAL_MS = 200;

const USAGE = `Usage: graft diff <a> <b> [--base <c>] [--json] [--quick] [--top N]

Compares two checkpoints tensor by tensor: how far b moved from a (l2, relative l2, cosine,
largest change, share of changed elements). With --base, also how the task vectors a-c and b-c
relate (cosine, sign agreement, conflicts), e.g. two fine-tunes of one base before a merge.
a, b and c are .safetensors files, model folders or *.safetensors.index.json files.

Options:
  --base <c>   common ancestor of a and b: adds the task-vector metrics
  --json       print the full report as JSON (the DiffReport) instead of tables
  --quick      compare a fixed sample of each tensor instead of every element (instant, approximate)
  --top N      most changed tensors to list (default ${DEFAULT_TOP}; 0 for none)`;

export const diffCommand: CliCommand = {
  name: 'diff',
  summary: 'compare two checkpoints (and their task vectors over a base)',
  usage: USAGE,
  async run(args, ctx) {
    const { values, positionals } = parseOptions(args);
    if (positionals.length !== 2) {
      throw new UsageError(positionals.length < 2 ? 'give the two checkpoints to compare.' : `expected two checkpoints, got ${positionals.length}: ${positionals.join(' ')}.`);
    }
    const top = parseTop(values.top);
    if (!values.quick) ctx.startRunner?.();
    const [a, b] = await Promise.all(positionals.map((p) => open(p, ctx)));
    const base = values.base !== undefined ? await open(values.base, ctx) : undefined;

    const progress = progressLine(ctx);
    let report: DiffReport;
    try {
      report = await diffCheckpoints(ctx.runner(), a, b, {
        base,
        mode: values.quick ? 'quick' : 'exact',
        signal: ctx.signal,
        onProgress: progress?.update,
      });
    } finally {
      progress?.clear();
    }

    if (values.json) writeJson(ctx.stdout, report);
    else writeLines(ctx.stdout, reportLines(report, top, ctx.cwd));
    return 0;
  },
};

function parseOptions(args: string[]) {
  return parseCommandLine(args, {
    base: { type: 'string' },
    json: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    top: { type: 'string' },
  });
}

function parseTop(value: string | undefined): number {
  if (value === undefined) return DEFAULT_TOP;
  if (!/^\d+$/.test(value)) throw new UsageError(`--top takes a whole number of tensors, got "${value}".`);
  return Number(value);
}

async function open(arg: string, ctx: CliContext): Promise<CheckpointLayout> {
  return openCheckpointArgument(await existingPath(arg, ctx), arg);
}

/** A percentage line rewritten in place on stderr; only when stderr is a terminal. */
function progressLine(ctx: CliContext): { update(fraction: number): void; clear(): void } | undefined {
  if (!process.stderr.isTTY) return undefined;
  let last = 0;
  let shown = false;
  return {
    update(fraction) {
      const now = Date.now();
      if (now - last < PROGRESS_INTERVAL_MS && fraction < 1) return;
      last = now;
      shown = true;
      ctx.stderr(`\rdiff: ${(fraction * 100).toFixed(0).padStart(3)}%`);
    },
    clear() {
      if (shown) ctx.stderr('\r\x1b[K');
    },
  };
}

export function formatReport(report: DiffReport, top: number, cwd: string): string {
  return reportLines(report, top, cwd).join('\n') + '\n';
}

/** The report as text lines; names and paths from the files are escaped (see core/text.ts). */
function reportLines(report: DiffReport, top: number, cwd: string): string[] {
  const lines: string[] = [];
  const s = report.summary;
  const shown = (p: string) => escapeControl(displayPath(p, cwd));
  lines.push(`a: ${shown(report.a)}`);
  lines.push(`b: ${shown(report.b)}`);
  if (report.base) lines.push(`base: ${shown(report.base)}`);
  lines.push('');
  const mode = s.mode === 'quick' ? 'quick (sampled; run without --quick for exact figures)' : 'exact';
  lines.push(`${s.tensors} tensors compared, ${s.numel.toLocaleString('en-US')} elements, ${mode}`);
  // With nothing compared the sums are empty: print no figures that would read as "identical".
  const comparable = s.tensors - (s.not_comparable ?? 0);
  if (s.tensors === 0) lines.push('No tensor has the same name and shape in both checkpoints, so nothing was compared (are they the same architecture?).');
  else if (comparable === 0) lines.push('No tensor could be compared: every position holds NaN or infinity in a or b, so there are no figures (check how these checkpoints were written).');
  else lines.push(`relative l2 ${fmt(s.rel_l2)}   cosine ${fmt(s.cosine, 6)}   changed ${pct(s.frac_changed)}   max |b-a| ${fmt(s.max_abs_diff ?? 0)}`);
  if (s.cosine_tv !== undefined) {
    lines.push(`task vectors over base: cosine ${fmt(s.cosine_tv)}   sign agreement ${s.sign_agreement == null ? 'n/a' : pct(s.sign_agreement)}   conflict ${pct(s.conflict ?? 0)}   |a-base|/|base| ${fmt(s.rel_norm_a ?? null)}   |b-base|/|base| ${fmt(s.rel_norm_b ?? null)}`);
  }
  if (s.nonfinite) lines.push(`warning: ${s.nonfinite.toLocaleString('en-US')} positions hold NaN or infinity and were left out`);
  const notComparable = report.tensors.filter((t) => t.not_comparable).map((t) => t.name);
  if (notComparable.length) lines.push(`warning: not comparable, only NaN or infinity in a or b (${notComparable.length}): ${listNames(notComparable)}`);
  for (const skipped of report.skipped ?? []) lines.push(`note: ${escapeControl(skipped.name)} not compared: ${skipped.reason}`);
  appendAll(lines, differencesInNames(report));

  const ranked = top > 0 ? mostChanged(report.tensors, top) : [];
  if (ranked.length > 0) {
    lines.push('', `Most changed tensors (by relative l2), top ${ranked.length} of ${report.tensors.length}:`);
    const withBase = report.tensors.some((t) => t.cosine_tv !== undefined);
    const header = ['tensor', 'numel', 'rel_l2', 'cosine', 'max|b-a|', 'changed', ...(withBase ? ['cos_tv', 'sign_agr'] : [])];
    const rows = ranked.map((t) => [
      escapeControl(t.name), t.numel.toLocaleString('en-US'), fmt(t.rel_l2), fmt(t.cosine, 6), fmt(t.max_abs_diff), pct(t.frac_changed),
      ...(withBase ? [t.cosine_tv === undefined ? '-' : fmt(t.cosine_tv), t.sign_agreement == null ? '-' : pct(t.sign_agreement)] : []),
    ]);
    appendAll(lines, table(header, rows));
  }

  const layers = summarizeLayers(report.tensors);
  if (layers.length > 0) {
    lines.push('', 'Per layer:');
    const rows = layers.map((l) => [escapeControl(l.group), l.layer === null ? '-' : String(l.layer), String(l.tensors), l.numel.toLocaleString('en-US'), fmt(l.rel_l2), fmt(l.cosine, 6), pct(l.frac_changed)]);
    appendAll(lines, table(['group', 'layer', 'tensors', 'numel', 'rel_l2', 'cosine', 'changed'], rows));
  }
  return lines;
}

/** Up to five names, escaped, and how many more. */
function listNames(names: string[]): string {
  return names.slice(0, 5).map(escapeControl).join(', ') + (names.length > 5 ? `, ... (${names.length - 5} more)` : '');
}

function differencesInNames(report: DiffReport): string[] {
  const lines: string[] = [];
  if (report.only_in_a.length) lines.push(`only in a (${report.only_in_a.length}): ${listNames(report.only_in_a)}`);
  if (report.only_in_b.length) lines.push(`only in b (${report.only_in_b.length}): ${listNames(report.only_in_b)}`);
  for (const m of report.shape_mismatch) {
    const compared = m.overlap ? `; compared the first ${m.overlapRows} rows: relative l2 ${fmt(m.overlap.rel_l2)}` : '; not compared';
    lines.push(`shape differs: ${escapeControl(m.name)} [${m.shapeA.join(', ')}] vs [${m.shapeB.join(', ')}]${compared}`);
  }
  if (report.base_mismatch?.length) lines.push(`no task-vector metrics (tensor missing from the base or shaped differently) (${report.base_mismatch.length}): ${listNames(report.base_mismatch)}`);
  return lines;
}

/**
 * Sorted by relative l2, largest first; an unbounded change (rel_l2 null: a was all zeros) ranks
 * first; tensors that could not be compared are left out.
 */
function mostChanged(tensors: TensorDiff[], top: number): TensorDiff[] {
  const key = (t: TensorDiff) => t.rel_l2 ?? Infinity;
  return tensors.filter((t) => !t.not_comparable).sort((x, y) => key(y) - key(x) || y.l2_diff - x.l2_diff).slice(0, top);
}

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, maxOf(rows.map((r) => r[i].length), 0)));
  // First column left-aligned (names), the figures right-aligned.
  const line = (cells: string[]) => '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return appendAll([line(header)], rows.map(line));
}

function fmt(value: number | null, digits = 4): string {
  if (value === null) return 'inf';
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  return magnitude >= 1e-3 && magnitude < 1e6 ? value.toFixed(digits) : value.toExponential(2);
}

function pct(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}
