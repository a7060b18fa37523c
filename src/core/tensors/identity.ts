// A cheap identity of a checkpoint's weights: a hash of every tensor's name, dtype and shape plus
// a few bytes sampled at the start, middle and end of its data. Two checkpoints with the same
// identity hold the same tensors; any retraining changes the sampled bytes with near certainty.
// Used by provenance records and patches to name the exact weights they were made from.
import { createHash } from 'node:crypto';
import type { CheckpointLayout } from '../safetensors/types';
import { readExactly } from '../safetensors/reader';
import { FileHandles } from './stream';

const SAMPLE_BYTES = 64;

/** Hex digest (32 characters) identifying the weights of `layout`. */
export async function weightIdentity(layout: CheckpointLayout): Promise<string> {
  const hash = createHash('sha256');
  const handles = new FileHandles();
  const sample = new Uint8Array(SAMPLE_BYTES);
  try {
    const tensors = [...layout.tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const t of tensors) {
      hash.update(`${t.name}\u0000${t.dtype}\u0000${t.shape.join(',')}\u0000`);
      const size = t.end - t.begin;
      if (size === 0) continue;
      const handle = await handles.get(t.file);
      for (const at of [0, Math.floor(size / 2), size - Math.min(size, SAMPLE_BYTES)]) {
        const n = Math.min(SAMPLE_BYTES, size - at);
        await readExactly(handle, sample.subarray(0, n), t.begin + at, t.file);
        hash.update(sample.subarray(0, n));
      }
    }
  } finally {
    await handles.closeAll();
  }
  return hash.digest('hex').slice(0, 32);
}
