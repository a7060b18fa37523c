// The GGUF container (llama.cpp / ggml): header, metadata key/values and tensor infos.
// Layout, little-endian: "GGUF" | u32 version | u64 tensor_count | u64 kv_count | kv... |
// tensor_info... | padding to general.alignment | tensor data (offsets relative to its start).

/** GGUF metadata value types, numbered as in the format. */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufValueType = (typeof GgufValueType)[keyof typeof GgufValueType];

export const GGUF_VALUE_TYPE_NAMES: Record<GgufValueType, string> = {
  0: 'u8', 1: 'i8', 2: 'u16', 3: 'i16', 4: 'u32', 5: 'i32', 6: 'f32', 7: 'bool', 8: 'string', 9: 'array', 10: 'u64', 11: 'i64', 12: 'f64',
};

/** An array value. `items` is absent when the reader skipped an array longer than its `maxArrayItems`. */
export interface GgufArrayValue {
  itemType: GgufValueType;
  length: number;
  items?: GgufValue[];
}

/** 64-bit integers are bigints so that token ids and sizes past 2^53 survive. */
export type GgufValue = number | bigint | boolean | string | GgufArrayValue;

export interface GgufMetadataEntry {
  key: string;
  type: GgufValueType;
  value: GgufValue;
}

/** ggml tensor element types: id, name, elements per block and bytes per block. */
export interface GgmlTypeInfo {
  id: number;
  name: string;
  blockSize: number;
  typeSize: number;
}

// Ids missing here (4, 5, 31-33, 36-38) were removed from ggml and cannot appear in a loadable file.
const GGML_TYPE_LIST: GgmlTypeInfo[] = [
  { id: 0, name: 'F32', blockSize: 1, typeSize: 4 },
  { id: 1, name: 'F16', blockSize: 1, typeSize: 2 },
  { id: 2, name: 'Q4_0', blockSize: 32, typeSize: 18 },
  { id: 3, name: 'Q4_1', blockSize: 32, typeSize: 20 },
  { id: 6, name: 'Q5_0', blockSize: 32, typeSize: 22 },
  { id: 7, name: 'Q5_1', blockSize: 32, typeSize: 24 },
  { id: 8, name: 'Q8_0', blockSize: 32, typeSize: 34 },
  { id: 9, name: 'Q8_1', blockSize: 32, typeSize: 40 },
  { id: 10, name: 'Q2_K', blockSize: 256, typeSize: 84 },
  { id: 11, name: 'Q3_K', blockSize: 256, typeSize: 110 },
  { id: 12, name: 'Q4_K', blockSize: 256, typeSize: 144 },
  { id: 13, name: 'Q5_K', blockSize: 256, typeSize: 176 },
  { id: 14, name: 'Q6_K', blockSize: 256, typeSize: 210 },
  { id: 15, name: 'Q8_K', blockSize: 256, typeSize: 292 },
  { id: 16, name: 'IQ2_XXS', blockSize: 256, typeSize: 66 },
  { id: 17, name: 'IQ2_XS', blockSize: 256, typeSize: 74 },
  { id: 18, name: 'IQ3_XXS', blockSize: 256, typeSize: 98 },
  { id: 19, name: 'IQ1_S', blockSize: 256, typeSize: 50 },
  { id: 20, name: 'IQ4_NL', blockSize: 32, typeSize: 18 },
  { id: 21, name: 'IQ3_S', blockSize: 256, typeSize: 110 },
  { id: 22, name: 'IQ2_S', blockSize: 256, typeSize: 82 },
  { id: 23, name: 'IQ4_XS', blockSize: 256, typeSize: 136 },
  { id: 24, name: 'I8', blockSize: 1, typeSize: 1 },
  { id: 25, name: 'I16', blockSize: 1, typeSize: 2 },
  { id: 26, name: 'I32', blockSize: 1, typeSize: 4 },
  { id: 27, name: 'I64', blockSize: 1, typeSize: 8 },
  { id: 28, name: 'F64', blockSize: 1, typeSize: 8 },
  { id: 29, name: 'IQ1_M', blockSize: 256, typeSize: 56 },
  { id: 30, name: 'BF16', blockSize: 1, typeSize: 2 },
  { id: 34, name: 'TQ1_0', blockSize: 256, typeSize: 54 },
  { id: 35, name: 'TQ2_0', blockSize: 256, typeSize: 66 },
  { id: 39, name: 'MXFP4', blockSize: 32, typeSize: 17 },
];

export const GGML_TYPES: ReadonlyMap<number, GgmlTypeInfo> = new Map(GGML_TYPE_LIST.map((t) => [t.id, t]));

export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
  return GGML_TYPE_LIST.find((t) => t.name === name.toUpperCase());
}

export interface GgufTensorInfo {
  name: string;
  /** ne[] as stored: dims[0] is the fastest-varying (row length), the reverse of a torch shape. */
  dims: number[];
  /** ggml type id. */
  type: number;
  typeName: string;
  /** Offset relative to the start of the data section, as stored. */
  offset: number;
  /** Absolute file positions [begin, end). */
  begin: number;
  end: number;
  numel: number;
}

export interface GgufHeader {
  path: string;
  fileSize: number;
  version: number;
  /** general.alignment, or 32 when absent. */
  alignment: number;
  /** Absolute position of the (aligned) tensor data section. */
  dataStart: number;
  metadata: GgufMetadataEntry[];
  /** Metadata entries stepped over unread (not asked for, or past the reader's byte budget). */
  skippedMetadata?: number;
  tensors: GgufTensorInfo[];
}

/** A GGUF file that cannot be read; the message says what is wrong and where. */
export class GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufError';
  }
}

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_MAX_DIMS. */
export const GGUF_MAX_DIMS = 4;
