// A merge recipe as parsed from mergekit's YAML (one document per stage for multi-stage recipes),
// with the position of every value so that errors point at the line and column.

export interface Pos {
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
}

export interface At<T> {
  value: T;
  pos: Pos;
}

export type Scalar = number | boolean | string;

/**
 * A parameter's setting as written: a scalar, a gradient (a list of numbers interpolated over the
 * layers of a slice), or conditions (`- filter: self_attn` / `value: ...`, the first whose filter
 * is in the tensor name wins; an entry without filter matches everything).
 */
export type Setting =
  | { kind: 'scalar'; value: Scalar }
  | { kind: 'gradient'; values: number[] }
  | { kind: 'conditions'; conditions: { filter?: string; setting: Setting }[] };

export interface ParamSetting {
  name: string;
  setting: Setting;
  /** Where the parameter's name is written. */
  pos: Pos;
}

export type ParamMap = Map<string, ParamSetting>;

export interface ModelEntry {
  model: At<string>;
  parameters: ParamMap;
}

export interface SliceSource {
  model: At<string>;
  layerRange: At<[number, number]>;
  parameters: ParamMap;
}

export interface SliceEntry {
  sources: SliceSource[];
  parameters: ParamMap;
  pos: Pos;
}

export interface RecipeStage {
  /** Multi-stage recipes name each stage; later stages use the name as a model. */
  name?: At<string>;
  method: At<string>;
  baseModel?: At<string>;
  /** diff_transfer's new base. */
  targetModel?: At<string>;
  models?: ModelEntry[];
  slices?: SliceEntry[];
  parameters: ParamMap;
  dtype?: At<string>;
  outDtype?: At<string>;
  tokenizerSource?: At<string>;
  randomSeed?: At<number>;
  /** Start of the stage's YAML document. */
  pos: Pos;
}

export interface Recipe {
  /** Absolute path of the recipe file (model paths are relative to its folder). */
  file: string;
  text: string;
  stages: RecipeStage[];
}

export type ProblemCode =
  | 'yaml' | 'unknown-key' | 'missing-key' | 'type' | 'unknown-method' | 'unknown-parameter' | 'misplaced-parameter'
  | 'bad-value' | 'missing-model' | 'model' | 'layer-range' | 'shape' | 'vocab' | 'output' | 'stage';

/** One thing wrong with a recipe, at a position in its file. */
export interface RecipeProblem {
  code: ProblemCode;
  message: string;
  pos: Pos;
  /** For quick fixes: the closest valid name, or the text that is wrong. */
  suggestion?: string;
  subject?: string;
}

/** A recipe that cannot be run, with every problem found (the first one is the message). */
export class RecipeError extends Error {
  constructor(readonly file: string, readonly problems: RecipeProblem[]) {
    super(problems.length > 0 ? formatProblem(file, problems[0]) : `${file}: invalid recipe.`);
    this.name = 'RecipeError';
  }

  get line(): number {
    return this.problems[0]?.pos.line ?? 1;
  }

  get col(): number {
    return this.problems[0]?.pos.col ?? 1;
  }
}

export function formatProblem(file: string, problem: RecipeProblem): string {
  return `${file}:${problem.pos.line}:${problem.pos.col}: ${problem.message}`;
}
