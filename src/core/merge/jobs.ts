// What the planner hands the engine for each output tensor: a job (method, evaluated parameters,
// output dtype) over operands, each a tensor in a file, a base tensor with a LoRA patch, or the
// output of a job of an earlier stage (multi-stage recipes are fused per tensor). Plain data, so
// jobs travel to worker threads as they are.
import type { DType, TensorRef } from '../safetensors/types';
import type { AdapterPatch } from './lora';
import type { TensorView } from './methods/types';

export type Operand =
  | { kind: 'file'; ref: TensorRef }
  | { kind: 'lora'; base: Operand; patch: AdapterPatch }
  | { kind: 'job'; job: TensorJob };

export interface TensorJob {
  /** Unique within a plan: stage index and tensor name. */
  id: string;
  /** The output tensor's name. */
  name: string;
  shape: number[];
  numel: number;
  /** Dtype the job's values are rounded to (its stage's output dtype). */
  dtype: DType;
  method: string;
  view: TensorView;
  base?: Operand;
  target?: Operand;
  models: Operand[];
  /** Chunks must hold whole rows (row-wise methods, DoRA). */
  rowWise: boolean;
}

/** Jobs this job reads from (earlier stages), depth first, each once. */
export function innerJobs(job: TensorJob): TensorJob[] {
  const out: TensorJob[] = [];
  const seen = new Set<string>();
  const visit = (op: Operand | undefined) => {
    if (!op) return;
    if (op.kind === 'job') {
      if (seen.has(op.job.id)) return;
      seen.add(op.job.id);
      for (const inner of operandsOf(op.job)) visit(inner);
      out.push(op.job);
    } else if (op.kind === 'lora') visit(op.base);
  };
  for (const op of operandsOf(job)) visit(op);
  return out;
}

export function operandsOf(job: TensorJob): Operand[] {
  return [...(job.base ? [job.base] : []), ...(job.target ? [job.target] : []), ...job.models];
}

/** Row-wise anywhere in the tree: chunks of the top job must then hold whole rows. */
export function needsWholeRows(job: TensorJob): boolean {
  const viaOperand = (op: Operand): boolean =>
    op.kind === 'job' ? needsWholeRows(op.job) : op.kind === 'lora' ? op.patch.kind === 'lora' && op.patch.magnitude !== undefined : false;
  return job.rowWise || operandsOf(job).some(viaOperand);
}

/** Files the job reads, for provenance and checks. */
export function filesOf(job: TensorJob): string[] {
  const files = new Set<string>();
  const visit = (op: Operand) => {
    if (op.kind === 'file') files.add(op.ref.file);
    else if (op.kind === 'lora') {
      visit(op.base);
      if (op.patch.kind === 'lora') {
        files.add(op.patch.a.file);
        files.add(op.patch.b.file);
      } else files.add(op.patch.tensor.file);
    } else for (const inner of operandsOf(op.job)) visit(inner);
  };
  for (const op of operandsOf(job)) visit(op);
  return [...files];
}
