// The diff engine's public surface.
export { diffCheckpoints, diffCacheKey, DEFAULT_TASK_ELEMENTS, type DiffOptions } from './diff';
export { summarizeLayers, type LayerDiff } from './layers';
export { finalizeMetrics, type DiffMetrics, type DiffPartial } from './metrics';
export { NON_LAYER_GROUP, parseTensorName, SINGLE_STACK_GROUP, type ParsedTensorName } from '../tensors/names';
export { diffTasks, type DiffChunkInput, type DiffChunkOutput, type DiffSegment, type DiffTasks } from './tasks';
export type { DiffReport, DiffSummary, ShapeMismatch, TensorDiff } from './types';
