// graft_provenance.json: what Graft writes beside every model it produces (merges, surgery), so
// that lineage is declared rather than guessed. Format (JSON object):
//   {
//     "tool": "graft",                       // always "graft"
//     "version": "0.1.0",                    // Graft version that wrote it
//     "method": "ties",                      // merge method or operation (linear, task_arithmetic, lora_merge, ...)
//     "base": "org/name" | "relative/path",  // the base the task vectors were taken against (optional)
//     "models": ["org/name", {"model": "path", "weight": 0.6}, ...],  // inputs, strings or objects with "model"
//     "recipe": { ... },                     // the full parameters, free-form (optional)
//     "created": "2025-01-01T00:00:00.000Z"  // ISO 8601
//   }
// Model references are hub ids or paths; relative paths are relative to the folder holding the file.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const PROVENANCE_FILE = 'graft_provenance.json';

export type ProvenanceModel = string | ({ model: string } & Record<string, unknown>);

export interface GraftProvenance {
  tool: 'graft';
  version: string;
  method: string;
  base?: string;
  models: ProvenanceModel[];
  recipe?: Record<string, unknown>;
  created: string;
}

export class ProvenanceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvenanceError';
  }
}

/** Parses and checks a provenance file's text; throws ProvenanceError saying which field is wrong. */
export function parseProvenance(text: string): GraftProvenance {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw new ProvenanceError(`${PROVENANCE_FILE} is not valid JSON (${error instanceof Error ? error.message : String(error)}).`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new ProvenanceError(`${PROVENANCE_FILE} must hold a JSON object.`);
  const record = data as Record<string, unknown>;
  if (record.tool !== 'graft') {
    const found = record.tool === undefined ? 'no "tool" field' : `"tool": ${JSON.stringify(record.tool)}`;
    throw new ProvenanceError(`${PROVENANCE_FILE} has ${found}; expected "graft".`);
  }
  for (const key of ['version', 'method', 'created'] as const) {
    if (typeof record[key] !== 'string' || !(record[key] as string).trim()) throw new ProvenanceError(`${PROVENANCE_FILE} needs a non-empty string "${key}".`);
  }
  if (record.base !== undefined && typeof record.base !== 'string') throw new ProvenanceError(`${PROVENANCE_FILE}: "base" must be a string (hub id or path).`);
  if (!Array.isArray(record.models)) throw new ProvenanceError(`${PROVENANCE_FILE} needs "models": a list of hub ids or paths.`);
  for (const [i, model] of record.models.entries()) {
    const ok = typeof model === 'string' || (typeof model === 'object' && model !== null && typeof (model as { model?: unknown }).model === 'string');
    if (!ok) throw new ProvenanceError(`${PROVENANCE_FILE}: models[${i}] must be a string or an object with a "model" string.`);
  }
  if (record.recipe !== undefined && (typeof record.recipe !== 'object' || record.recipe === null || Array.isArray(record.recipe))) {
    throw new ProvenanceError(`${PROVENANCE_FILE}: "recipe" must be an object.`);
  }
  return record as unknown as GraftProvenance;
}

export function provenanceModelNames(provenance: GraftProvenance): string[] {
  return provenance.models.map((m) => (typeof m === 'string' ? m : m.model));
}

/** Writes `graft_provenance.json` into `dir` (pretty-printed, stable key order); refuses to replace one. */
export async function writeProvenance(dir: string, provenance: Omit<GraftProvenance, 'tool' | 'created'> & { created?: string }): Promise<string> {
  const full: GraftProvenance = {
    tool: 'graft',
    version: provenance.version,
    method: provenance.method,
    ...(provenance.base !== undefined ? { base: provenance.base } : {}),
    models: provenance.models,
    ...(provenance.recipe !== undefined ? { recipe: provenance.recipe } : {}),
    created: provenance.created ?? new Date().toISOString(),
  };
  const file = path.join(dir, PROVENANCE_FILE);
  await fs.promises.writeFile(file, JSON.stringify(full, null, 2) + '\n', { flag: 'wx' });
  return file;
}
