// Catalog kernels for the worker pool (registered in src/worker/tasks.ts): the extension and the
// CLI list folders and read their headers, cards and configs here, off the calling thread.
import { scanFolders } from './scan';

export const catalogTasks = {
  /** Several folders listed and read; see scanFolders. */
  scanFolders,
};
