// Catalog kernels for the worker pool (registered in src/worker/tasks.ts): the extension reads
// each folder's headers, cards and configs here, off the extension host's thread.
import type { CatalogEntry, CatalogProblem } from './types';
import { readCatalogFolder, type FolderFiles } from './scan';

export interface CatalogFolderInput {
  dir: string;
  files: FolderFiles;
}

export const catalogTasks = {
  /** One folder's entries and problems; see readCatalogFolder. */
  catalogFolder: (input: CatalogFolderInput): Promise<{ entries: CatalogEntry[]; problems: CatalogProblem[] }> => readCatalogFolder(input.dir, input.files),
};
