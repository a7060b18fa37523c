// Worker kernels of the Compare view's tensor detail; the lead registers them in src/worker/tasks.ts.
import type { TaskContext } from '../engine/task';
import { tensorDiffDetail, type TensorDiffDetailInput } from './detail';

export const diffDetailTasks = {
  tensorDiffDetail: (input: TensorDiffDetailInput, ctx: TaskContext) => tensorDiffDetail(input, ctx),
};
