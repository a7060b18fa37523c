// The models a recipe names, found in its YAML even when the recipe has other problems, so an
// editor can report a missing model while the user is still fixing a parameter name.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Node as YamlNode } from 'yaml';
import { missingModelMessage, type ModelResolver } from '../plan';
import type { At, RecipeProblem } from './types';

const MODEL_KEYS = new Set(['model', 'base_model', 'target_model']);

/** Every model reference (model, base_model, target_model values) with its position, and the stage names. */
export function modelReferences(text: string): { references: At<string>[]; stageNames: Set<string> } {
  const lines = new LineCounter();
  const references: At<string>[] = [];
  const stageNames = new Set<string>();
  const visit = (node: unknown, depth: number) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : '';
        if (isScalar(pair.value) && typeof pair.value.value === 'string') {
          if (MODEL_KEYS.has(key)) {
            const { line, col } = lines.linePos((pair.value as YamlNode).range?.[0] ?? 0);
            references.push({ value: pair.value.value.trim(), pos: { line, col } });
          } else if (key === 'name' && depth === 0) stageNames.add(pair.value.value.trim());
        } else visit(pair.value, depth + 1);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) {
        // `models: [a, b]`: bare entries are model references too.
        if (isScalar(item) && typeof item.value === 'string' && depth > 0) {
          const { line, col } = lines.linePos(item.range?.[0] ?? 0);
          references.push({ value: item.value.trim(), pos: { line, col } });
        } else visit(item, depth + 1);
      }
    }
  };
  for (const doc of parseAllDocuments(text, { lineCounter: lines })) visit(doc.contents, 0);
  return { references, stageNames };
}

/** A missing-model problem for every reference that is neither a path, an indexed model, nor a stage. */
export async function missingModels(text: string, file: string, resolveModel?: ModelResolver): Promise<RecipeProblem[]> {
  const dir = path.dirname(path.resolve(file));
  const { references, stageNames } = modelReferences(text);
  const found = async (reference: string) => (await fsp.stat(path.resolve(dir, reference)).then(() => true, () => false)) || (await resolveModel?.(reference)) !== undefined;
  const problems: RecipeProblem[] = [];
  for (const ref of references) {
    if (!ref.value || stageNames.has(ref.value)) continue;
    const parts = (await found(ref.value)) ? [] : ref.value.includes('+') ? ref.value.split('+') : [ref.value];
    for (const part of parts) {
      if (!(await found(part))) problems.push({ code: 'missing-model', message: missingModelMessage(part), pos: ref.pos, subject: part });
    }
  }
  return problems;
}
