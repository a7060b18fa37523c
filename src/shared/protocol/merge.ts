// Messages between the merge panel (src/extension/webviews/mergePanel.ts) and its webview
// (webview/merge/). The webview edits a MergeForm; the host turns it into a recipe file, plans it,
// and runs it through the same engine as `graft merge`.

export type ParamScalar = number | boolean | string;

export interface ParamView {
  name: string;
  kind: 'number' | 'boolean' | 'string';
  default?: ParamScalar;
  required?: boolean;
  choices?: string[];
  min?: number;
  max?: number;
  doc: string;
}

export interface MethodView {
  name: string;
  summary: string;
  base: 'required' | 'optional' | 'none';
  target: boolean;
  minModels: number;
  maxModels?: number;
  /** slerp: a chosen base is the first of the interpolated models and counts towards min/max. */
  baseCounts: boolean;
  parameters: ParamView[];
  tensorParameters: ParamView[];
}

export interface ModelView {
  path: string;
  label: string;
  /** base, finetune, adapter, merge, ... (the lineage kind: drives the icon). */
  kind: string;
  description: string;
  /** Paths of its parents in the lineage graph (for offering the common parent as base). */
  parents: string[];
}

export interface FormModel {
  path: string;
  /** Per-model parameters as typed (numbers as numbers). A number list is a gradient. */
  parameters: Record<string, ParamScalar | number[]>;
}

export interface MergeForm {
  method: string;
  models: FormModel[];
  base?: string;
  target?: string;
  parameters: Record<string, ParamScalar | number[]>;
  dtype?: string;
  out: string;
}

export interface PlanView {
  method: string;
  tensors: number;
  outputBytes: number;
  shards: number;
  peakBytes: number;
  seconds: number;
  layers?: number;
  warnings: string[];
  recipeText: string;
  recipeFile: string;
}

export interface ProblemView {
  line: number;
  col: number;
  message: string;
}

/** Task-vector interference of the first two models over the base, one row per layer. */
export interface InterferenceRow {
  label: string;
  /** Share of weights both changed with opposite signs. */
  conflict: number;
  /** Cosine of the two task vectors. */
  cosine: number;
}

export type MergeToWebview =
  | { type: 'init'; methods: MethodView[]; models: ModelView[]; prefill?: Partial<MergeForm>; trusted: boolean }
  | { type: 'models'; models: ModelView[] }
  | { type: 'plan'; requestId: number; plan?: PlanView; problems?: ProblemView[]; error?: string }
  | { type: 'interference'; requestId: number; rows?: InterferenceRow[]; note: string }
  | { type: 'output'; path: string }
  | { type: 'status'; state: 'idle' | 'running' | 'done' | 'failed' | 'refused'; message: string; out?: string };

export type MergeToHost =
  | { type: 'ready' }
  | { type: 'plan'; requestId: number; form: MergeForm }
  | { type: 'browseOutput'; current: string }
  | { type: 'save'; form: MergeForm }
  | { type: 'merge'; form: MergeForm }
  | { type: 'openRecipe'; form: MergeForm };

/** What the webview persists and the serializer restores. */
export interface MergeState {
  form?: MergeForm;
  search?: string;
}
