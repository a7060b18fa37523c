// Public API of the safetensors core: reading and validating (exactly like safetensors 0.8.0),
// decoding, writing, and opening multi-file checkpoints.
export * from './types';
export { SafetensorsError, isSafetensorsError, safetensorsRuleOf, HEADER_ERROR_PREFIX, type HeaderRule, type SafetensorsRule } from './errors';
export { readHeader, readHeaderFrom, readElements, readTensorBytes, openForRead, openReadHandle } from './reader';
export { parseHeader, checkHeaderLength, MAX_HEADER_SIZE } from './header';
export { LITTLE_ENDIAN, dtypeBits, byteLengthOf, decodeToFloat, decodeInto, decodesToFloat64, canDecode, bf16ToF32Table, f16ToF32Table, encodeFromFloat32, f32BitsToBf16, f32BitsToF16 } from './dtypes';
export {
  planSafetensors,
  SafetensorsFileWriter,
  writeSafetensors,
  writeShardedSafetensors,
  planShards,
  writeTextAtomically,
  type ShardPlan,
  type TensorSpec,
  type TensorData,
  type SafetensorsPlan,
  type WriteOptions,
  type ShardOptions,
} from './writer';
export { openCheckpoint, findCheckpointFile } from './checkpoint';
