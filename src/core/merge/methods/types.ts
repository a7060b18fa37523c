// What a merge method declares (like mergekit's registry): its parameters with defaults, whether it
// needs a base, and its kernel: the whole-tensor statistics it needs (stages, each a reduce over
// chunks) and the element-wise apply over one chunk. The CLI's help, recipe diagnostics, the
// planner, the workers and the editor all read these declarations.
import type { KernelWork } from '../../kernels/merge';

export type ParamKind = 'number' | 'boolean' | 'string';

export interface ParamDef {
  name: string;
  kind: ParamKind;
  /** Absent and not required: the parameter is simply not set. */
  default?: number | boolean | string;
  required?: boolean;
  /** For strings: the accepted values. */
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** One line for hovers, completion and --help. */
  doc: string;
}

export type ParamValue = number | boolean | string;
export type ParamValues = Record<string, ParamValue>;

/** One output tensor as a kernel sees it: shapes, parameters evaluated for this tensor. */
export interface TensorView {
  name: string;
  shape: number[];
  numel: number;
  /** Length of the last dimension (1 for scalars): what "a row" means for row-wise methods. */
  rowLength: number;
  /** Number of merged models (inputs besides the base). */
  models: number;
  hasBase: boolean;
  /** The method's global parameters, evaluated for this tensor (gradients, filters applied). */
  globals: ParamValues;
  /** Per merged model, its tensor parameters for this tensor. */
  perModel: ParamValues[];
  seed: number;
  /** Stream identifiers for seeded randomness, one per model (see random.ts). */
  streams: number[];
}

/** Elements [start, start + count) of every input of one tensor, decoded to float32. */
export interface ChunkData {
  start: number;
  count: number;
  base?: Float32Array;
  models: Float32Array[];
  /**
   * For a method whose kernel says `readsBf16`: the models' stored bf16 bits in the kernels' memory,
   * where a model was read that way, not yet decoded; `models` decodes them when first read, so a
   * kernel that takes the bits skips the decode.
   */
  bf16Models?: (Uint16Array | undefined)[];
  /** The base's bf16 bits in the same way (`base` decodes them when first read). */
  bf16Base?: Uint16Array;
  /** The new base of diff_transfer. */
  target?: Float32Array;
  /**
   * With the WebAssembly kernels: memory for the chunk's temporaries beside its inputs, which then
   * live in the kernels' memory too, so element loops can run there (see shared.ts temporary()).
   */
  work?: KernelWork;
}

/** Results of earlier stages, by stage id; values must survive structured cloning. */
export type Found = Record<string, unknown>;

/** A pass over the whole tensor that computes a statistic the apply needs. */
export interface Stage<P = unknown> {
  id: string;
  map(t: TensorView, found: Found, chunk: ChunkData): P;
  /** Combines partials of consecutive ranges, `a` before `b`; must not depend on how ranges were cut. */
  merge(a: P, b: P): P;
  finalize(p: P, t: TensorView, found: Found): unknown;
  /**
   * A task's partial as it is sent back from its worker, when a smaller form exists (a histogram's
   * non-empty bins only); merge() takes packed and unpacked partials alike. `work`: the task's
   * kernel memory, its temporaries free, when it has some.
   */
  pack?(p: P, work?: KernelWork): P;
}

export interface MethodKernel {
  /** apply() takes ChunkData.bf16Models when they are there (and reads `models` only otherwise). */
  readsBf16?: boolean;
  /** The next stage this tensor still needs given what was found, or null to apply. */
  nextStage?(t: TensorView, found: Found): Stage | null;
  /**
   * Writes the merged values of the chunk into `out` (count elements). Row-wise methods are given
   * whole rows only (see MergeMethod.rowWise).
   */
  apply(t: TensorView, found: Found, chunk: ChunkData, out: Float32Array): void;
}

export type BaseUse =
  /** A base is required (task vectors are taken against it). */
  | 'required'
  /** A base is used when given. */
  | 'optional'
  /** The method takes no base. */
  | 'none';

export interface MergeMethod {
  name: string;
  /** One line: what it does and when to use it. */
  summary: string;
  reference?: string;
  base: BaseUse;
  /** A target model (the new base of diff_transfer) is required. */
  target?: 'required';
  /**
   * The base is the first merged input rather than a separate one (slerp's t = 0 end): the planner
   * puts it first in `models` and the counts below include it.
   */
  baseAsFirstModel?: boolean;
  /** Merged models besides the base. */
  minModels: number;
  maxModels?: number;
  parameters: ParamDef[];
  tensorParameters: ParamDef[];
  /** True when the apply needs whole rows of the tensor in one chunk. */
  rowWise?(globals: ParamValues): boolean;
  /** A plan-time check of evaluated parameters: returns a problem to report, or undefined. */
  check?(t: TensorView): string | undefined;
  kernel: MethodKernel;
}
