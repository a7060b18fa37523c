// Opening a checkpoint as one list of tensors, whatever its layout: a single .safetensors file,
// a sharded set described by *.safetensors.index.json, or a Hugging Face style folder holding
// either. Every shard header is validated, and the index must agree with the shards exactly.

import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { appendAll } from '../collections';
import { mapLimit } from '../engine/pool';
import { describeFsError, NotRegularFileError, readFileHead, specialFileKind, scanFs } from '../files';
import { SafetensorsError } from './errors';
import { ioError, readHeader } from './reader';
import type { CheckpointLayout, SafetensorsHeader, TensorRef } from './types';

/** Index files are small JSON; refuse absurd ones instead of loading them. */
const MAX_INDEX_BYTES = 64 * 1024 * 1024;
const HEADER_READ_CONCURRENCY = 8;

const INDEX_SUFFIX = '.safetensors.index.json';

function isIndexName(name: string): boolean {
  return name.endsWith(INDEX_SUFFIX);
}

async function statOf(file: string) {
  try {
    return await scanFs.stat(file); // follows symlinks (HF cache snapshots link into blobs/)
  } catch (error) {
    throw ioError(error, file, 'open');
  }
}

/** Opens a .safetensors file, a *.safetensors.index.json, or a folder holding a checkpoint. */
export async function openCheckpoint(target: string): Promise<CheckpointLayout> {
  const absolute = path.resolve(target);
  const stat = await statOf(absolute);
  if (stat.isDirectory()) return openFolder(absolute);
  const special = specialFileKind(stat);
  if (special) throw ioError(new NotRegularFileError(absolute, special), absolute, 'open');
  if (absolute.endsWith('.json')) return openIndex(absolute, absolute);
  return openFile(absolute, absolute);
}

/** Which file of a folder holds the checkpoint, by the preference order transformers uses. */
export async function findCheckpointFile(folder: string): Promise<string> {
  let names: string[];
  try {
    names = (await fsp.readdir(folder)).sort();
  } catch (error) {
    throw ioError(error, folder, 'list');
  }
  if (names.includes('model' + INDEX_SUFFIX)) return path.join(folder, 'model' + INDEX_SUFFIX);
  const index = names.find(isIndexName);
  if (index) return path.join(folder, index);
  if (names.includes('model.safetensors')) return path.join(folder, 'model.safetensors');
  const weights = names.filter((n) => n.endsWith('.safetensors'));
  if (weights.length === 1) return path.join(folder, weights[0]);
  if (weights.length > 1) {
    throw new SafetensorsError(
      `"${folder}" holds several .safetensors files (${weights.join(', ')}) and no index.json saying how they form one checkpoint. Open one of the files directly, or add a ${INDEX_SUFFIX}.`,
      { rule: 'ambiguous-folder', file: folder },
    );
  }
  throw new SafetensorsError(`"${folder}" holds no .safetensors file or ${INDEX_SUFFIX}. Point at a folder or file with safetensors weights.`, {
    rule: 'no-weights',
    file: folder,
  });
}

async function openFolder(folder: string): Promise<CheckpointLayout> {
  const file = await findCheckpointFile(folder);
  return isIndexName(file) ? openIndex(file, folder) : openFile(file, folder);
}

function refsOf(header: SafetensorsHeader, file: string): TensorRef[] {
  return header.tensors.map((t) => ({ ...t, file }));
}

function totals(tensors: readonly TensorRef[]): { parameters: number; bytes: number } {
  let parameters = 0;
  let bytes = 0;
  for (const t of tensors) {
    parameters += t.numel;
    bytes += t.end - t.begin;
  }
  return { parameters, bytes };
}

async function openFile(file: string, openedAs: string): Promise<CheckpointLayout> {
  const header = await readHeader(file);
  const tensors = refsOf(header, file);
  return { path: openedAs, format: 'safetensors', files: [file], tensors, metadata: header.metadata, ...totals(tensors) };
}

function indexError(indexFile: string, problem: string, details: { rule?: 'invalid-index' | 'missing-shard' | 'tensor-not-in-shard' | 'unlisted-tensor'; tensor?: string } = {}): SafetensorsError {
  return new SafetensorsError(`Index "${indexFile}": ${problem}`, { rule: details.rule ?? 'invalid-index', tensor: details.tensor, file: indexFile });
}

/** A shard must be a plain file name beside the index: no paths, no parent folders, no URLs. */
function checkShardName(indexFile: string, tensor: string, shard: unknown): string {
  if (typeof shard !== 'string' || shard === '') {
    throw indexError(indexFile, `weight_map gives tensor "${tensor}" the shard ${JSON.stringify(shard)}, which is not a file name.`, { tensor });
  }
  const unsafe =
    shard === '.' || shard === '..' || shard.includes('/') || shard.includes('\\') || shard.includes(':') || shard.includes('\0') || path.isAbsolute(shard);
  if (unsafe) {
    throw indexError(
      indexFile,
      `weight_map gives tensor "${tensor}" the shard "${shard}", which is not a plain file name in the index's folder. Shards must sit beside the index; paths, "..", and URLs are refused.`,
      { tensor },
    );
  }
  return shard;
}

interface ParsedIndex {
  weightMap: Map<string, string>;
  shards: string[];
  metadata: Record<string, unknown> | null;
}

async function readIndex(indexFile: string): Promise<ParsedIndex> {
  const stat = await statOf(indexFile);
  if (stat.size > MAX_INDEX_BYTES) throw indexError(indexFile, `${stat.size} bytes is too large for an index file (limit ${MAX_INDEX_BYTES}).`);
  let text: string;
  try {
    text = await readFileHead(indexFile, Math.max(1, stat.size));
  } catch (error) {
    throw ioError(error, indexFile);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw indexError(indexFile, `not valid JSON (${(error as Error).message}). Regenerate the index.`);
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw indexError(indexFile, 'expected a JSON object with a "weight_map".');
  const { weight_map: rawMap, metadata } = json as { weight_map?: unknown; metadata?: unknown };
  if (!rawMap || typeof rawMap !== 'object' || Array.isArray(rawMap)) throw indexError(indexFile, 'missing "weight_map" (an object from tensor name to shard file name).');
  if (metadata !== undefined && metadata !== null && (typeof metadata !== 'object' || Array.isArray(metadata))) {
    throw indexError(indexFile, '"metadata" must be an object.');
  }
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(rawMap)) weightMap.set(tensor, checkShardName(indexFile, tensor, shard));
  // Shard files in name order: model-00001-of-N first, whatever order the map lists tensors in.
  const shards = [...new Set(weightMap.values())].sort();
  return { weightMap, shards, metadata: (metadata as Record<string, unknown> | undefined) ?? null };
}

async function openIndex(indexFile: string, openedAs: string): Promise<CheckpointLayout> {
  const { weightMap, shards, metadata } = await readIndex(indexFile);
  const folder = path.dirname(indexFile);
  const files = shards.map((s) => path.join(folder, s));
  const headers = await mapLimit(files, HEADER_READ_CONCURRENCY, async (file, i) => {
    try {
      const stat = await fsp.stat(file);
      if (stat.isDirectory()) throw Object.assign(new Error('not a file'), { code: 'EISDIR' });
      const special = specialFileKind(stat);
      if (special) throw new NotRegularFileError(file, special);
    } catch (error) {
      const firstTensor = [...weightMap].find(([, s]) => s === shards[i])![0];
      const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
      const why = missing ? 'does not exist' : `cannot be read (${describeFsError(error)})`;
      throw indexError(indexFile, `shard "${shards[i]}" (holding "${firstTensor}" among others) ${why} in ${folder}.${missing ? ' Download or restore it.' : ''}`, {
        rule: 'missing-shard',
        tensor: firstTensor,
      });
    }
    return readHeader(file);
  });

  const tensors: TensorRef[] = [];
  for (let i = 0; i < files.length; i++) {
    const names = new Set<string>();
    for (const t of headers[i].tensors) {
      names.add(t.name);
      const listed = weightMap.get(t.name);
      if (listed === undefined) {
        throw indexError(indexFile, `shard "${shards[i]}" holds tensor "${t.name}", which weight_map does not list. Regenerate the index.`, {
          rule: 'unlisted-tensor',
          tensor: t.name,
        });
      }
      if (listed !== shards[i]) {
        throw indexError(indexFile, `shard "${shards[i]}" holds tensor "${t.name}", which weight_map assigns to shard "${listed}". Regenerate the index.`, {
          rule: 'unlisted-tensor',
          tensor: t.name,
        });
      }
    }
    for (const [tensor, shard] of weightMap) {
      if (shard === shards[i] && !names.has(tensor)) {
        throw indexError(indexFile, `weight_map puts tensor "${tensor}" in shard "${shard}", but that shard does not contain it.`, {
          rule: 'tensor-not-in-shard',
          tensor,
        });
      }
    }
    appendAll(tensors, refsOf(headers[i], files[i]));
  }
  const sums = totals(tensors);
  const warnings: string[] = [];
  const declared = metadata?.total_size;
  if (typeof declared === 'number' && declared !== sums.bytes) {
    warnings.push(`The index declares total_size ${declared} but its shards hold ${sums.bytes} bytes of tensors.`);
  }
  const layout: CheckpointLayout = { path: openedAs, format: 'safetensors-sharded', files, indexFile, tensors, metadata, ...sums };
  if (warnings.length > 0) layout.warnings = warnings;
  return layout;
}
