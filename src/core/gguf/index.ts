// GGUF (llama.cpp) headers: read for the catalog, written for tests and the demo workspace.
export * from './types';
export { readGgufHeader, GGUF_CATALOG_LIMITS, ggufValue, ggufString, ggufNumber, type ReadGgufOptions } from './reader';
export { writeGguf, type GgufToWrite, type GgufTensorToWrite } from './writer';
