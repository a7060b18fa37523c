// Weight patches: extract (model - base), apply (model + sum s_i d_i), inspect.
export { extractPatch, PATCH_DTYPES, referenceFrom, type ExtractOptions, type ExtractResult } from './extract';
export { applyPatches, baseMismatchMessage, checkPatchesFit, patchBaseDistance, type ApplyOptions, type ApplyResult, type PatchDistance } from './apply';
export { readPatch, patchLayerNorms, PatchError, type PatchInfo, type PatchLayerNorm } from './format';
export { patchTasks, type PatchTasks } from './tasks';
