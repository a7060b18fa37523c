// Shapes shared by the safetensors reader, writer and every consumer (stats, diff, lineage, merge).

/** Every dtype the safetensors spec (0.8.0) names. */
export const DTYPES = [
  'BOOL', 'F4', 'F6_E2M3', 'F6_E3M2', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ',
  'I16', 'U16', 'F16', 'BF16', 'I32', 'U32', 'F32', 'C64', 'F64', 'I64', 'U64',
] as const;
export type DType = (typeof DTYPES)[number];

/** One tensor as declared by a file's header. Offsets are absolute file positions. */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /**
   * The dimensions as exact decimal text, only when one is past 2^53 (possible in a valid file
   * for zero-size tensors), where `shape` holds rounded numbers.
   */
  shapeText?: string[];
  /** Product of shape (1 for a scalar, 0 for an empty tensor). */
  numel: number;
  /** data_offsets as written in the header, relative to the data section. */
  dataOffsets: [number, number];
  /** Absolute position of the first byte in the file. */
  begin: number;
  /** Absolute position one past the last byte in the file. */
  end: number;
}

/** The validated header of one .safetensors file. */
export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** The u64 at the start of the file: length of the JSON header in bytes. */
  headerLength: number;
  /** 8 + headerLength: where tensor data begins. */
  dataStart: number;
  /** Tensors in header order sorted by begin offset. */
  tensors: TensorInfo[];
  /** `__metadata__`, or null when absent. */
  metadata: Record<string, string> | null;
}

/** A tensor of a (possibly sharded) checkpoint: where its bytes live. */
export interface TensorRef extends TensorInfo {
  /** Absolute path of the .safetensors file holding it. */
  file: string;
}

/** A single file, an HF-layout folder or a sharded set, seen as one list of tensors. */
export interface CheckpointLayout {
  /** What was opened: a file, a folder or an index.json path. */
  path: string;
  format: 'safetensors' | 'safetensors-sharded';
  /** Absolute paths of the weight files (shards in file name order). */
  files: string[];
  /** Index file for sharded sets. */
  indexFile?: string;
  tensors: TensorRef[];
  /** `__metadata__` of a single file, or the index's `metadata` for a sharded set. */
  metadata: Record<string, unknown> | null;
  /** Sum of numel over tensors. */
  parameters: number;
  /** Sum of tensor byte sizes. */
  bytes: number;
  /** Oddities that do not prevent reading (e.g. an index whose total_size disagrees with its shards). */
  warnings?: string[];
}
