// Model surgery: merge recipes, the method registry, planning and the streaming engine.
export { MERGE_METHODS, findMethod, methodNames } from './methods/registry';
export type { MergeMethod, ParamDef, ParamValues, TensorView } from './methods/types';
export { parseRecipe, parseRecipeText, DTYPE_NAMES } from './recipe/parse';
export { RecipeError, formatProblem, type Recipe, type RecipeProblem, type RecipeStage, type Pos } from './recipe/types';
export { planMerge, evaluateSetting, withLayerIndex, type MergePlan, type PlannedTensor, type PlannedInput, type ModelResolver, type PlanOptions } from './plan';
export { executeMerge, checkOutput, jobRanges, MergeOutputError, DEFAULT_SHARD_BYTES, DEFAULT_CHUNK_ELEMENTS, type MergeProgress, type MergeResult, type ExecuteOptions } from './engine';
export { mergeTasks, type MergeTasks } from './tasks';
export { loadAdapter, readAdapterConfig, loraScale, AdapterError, type AdapterConfig, type LoadedAdapter } from './lora';
