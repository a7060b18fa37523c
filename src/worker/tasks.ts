// The registry of kernels the worker threads can run. Each core domain exports its own map;
// the pool's type (GraftTasks) is derived from this object so callers are type-checked.
import { catalogTasks } from '../core/catalog/tasks';
import { combineTaskMaps } from '../core/engine/pool';
import { diffDetailTasks } from '../core/diff/detailTasks';
import { diffTasks } from '../core/diff/tasks';
import { lineageTasks } from '../core/lineage/tasks';
import { mergeTasks } from '../core/merge/tasks';
import { loraTasks } from '../core/lora/tasks';
import { patchTasks } from '../core/patch/tasks';
import { statsTasks } from '../core/stats/tasks';

export const workerTasks = combineTaskMaps(statsTasks, diffTasks, diffDetailTasks, lineageTasks, mergeTasks, catalogTasks, patchTasks, loraTasks);

export type GraftTasks = typeof workerTasks;

/** ArrayBuffers in a result (top level or one level down) are moved, not copied, to the caller. */
export function transferablesOf(output: unknown): ArrayBuffer[] {
  const found = new Set<ArrayBuffer>();
  const visit = (value: unknown, depth: number): void => {
    if (!value || typeof value !== 'object') return;
    if (ArrayBuffer.isView(value)) {
      if (value.buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === value.buffer.byteLength) found.add(value.buffer);
      return;
    }
    if (value instanceof ArrayBuffer) {
      found.add(value);
      return;
    }
    if (depth >= 2) return;
    for (const child of Array.isArray(value) ? value : Object.values(value)) visit(child, depth + 1);
  };
  visit(output, 0);
  return [...found];
}
