// LoRA extraction: dense fine-tunes compressed into PEFT adapters.
export { extractLora, type LoraExtractOptions, type LoraExtractResult, type ExtractedModule } from './extract';
export { loraTasks, chooseRank, type LoraTasks, type LoraExtractInput, type LoraExtractOutput } from './tasks';
