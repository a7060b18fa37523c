// `graft validate`: checks a .safetensors file (or a sharded checkpoint: its index and every
// shard) exactly as safetensors 0.8.0 would, and says why it would be refused.

import { formatBytes, formatParameters } from '../../core/format';
import { isSafetensorsError, openCheckpoint, type CheckpointLayout } from '../../core/safetensors';
import { escapeControl } from '../../core/text';
import { parseCommandLine, pathArgument } from '../args';
import type { CliCommand } from '../context';
import { writeJson } from '../output';

const USAGE = `Usage: graft validate <file.safetensors | folder | *.safetensors.index.json> [--json]

Checks a safetensors file the way the reference library (safetensors 0.8.0) reads it: header
length, UTF-8, JSON schema, dtypes, shapes, offsets and file coverage. For a folder or an index,
checks the index and every shard, and that each tensor is where the index says.

Options:
  --json   print {"valid", "error", "rule", "tensors"} as JSON

Exit codes: 0 valid, 1 invalid, 2 wrong arguments.`;

export interface ValidateReport {
  valid: boolean;
  /** `SafetensorError: <message>`, as the reference Python library prints it; null when valid. */
  error: string | null;
  /** Machine-readable rule that failed (see SafetensorsRule); null when valid. */
  rule: string | null;
  /** The file at fault when several were checked. */
  file: string | null;
  tensors: number;
}


/** Validates what `target` points at; never throws for an invalid checkpoint, only reports. */
export async function validateTarget(target: string): Promise<{ report: ValidateReport; layout?: CheckpointLayout }> {
  try {
    const layout = await openCheckpoint(target);
    return { report: { valid: true, error: null, rule: null, file: null, tensors: layout.tensors.length }, layout };
  } catch (error) {
    if (!isSafetensorsError(error) || error.rule === 'io') throw error;
    return { report: { valid: false, error: `${error.name}: ${error.message}`, rule: error.rule, file: error.file ?? null, tensors: 0 } };
  }
}

export const validateCommand: CliCommand = {
  name: 'validate',
  summary: 'check that a safetensors file or checkpoint loads, exactly as safetensors 0.8.0 decides',
  usage: USAGE,
  async run(args, ctx) {
    const { values, positionals } = parseCommandLine(args, { json: { type: 'boolean' } });
    const target = await pathArgument(positionals, ctx, 'file or folder to validate');
    const { report, layout } = await validateTarget(target);
    if (values.json) {
      writeJson(ctx.stdout, report, 0);
    } else if (report.valid && layout) {
      const files = layout.files.length > 1 ? `, ${layout.files.length} files` : '';
      ctx.stdout(`valid: ${escapeControl(target)} (${report.tensors} tensors, ${formatParameters(layout.parameters)} parameters, ${formatBytes(layout.bytes)}${files})\n`);
      for (const warning of layout.warnings ?? []) ctx.stdout(`warning: ${escapeControl(warning)}\n`);
    } else {
      const where = report.file && report.file !== target ? ` (in ${report.file})` : '';
      ctx.stdout(escapeControl(`invalid: ${target}${where}`) + `\n  ${escapeControl(report.error ?? '')}\n`);
    }
    return report.valid ? 0 : 1;
  },
};
