// Model lineage: the graph of where every checkpoint came from (declared and inferred from weights).
export * from './types';
export { buildLineage, type BuildLineageOptions } from './build';
export { lineageTasks } from './tasks';
export { computeFingerprint, fingerprintLayout, samplesPerTensor, FINGERPRINT_VERSION, type FingerprintInput, type FingerprintSegment } from './fingerprint';
export { groupMetrics, inferGroupEdges, type GroupMember, type GroupMetrics } from './infer';
