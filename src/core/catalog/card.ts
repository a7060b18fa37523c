// Model cards: the YAML front matter of README.md, as the Hugging Face Hub reads it.
// Delimiters follow huggingface_hub: optional leading whitespace, a `---` line, the YAML, then a
// line that is exactly `---` (followed by a line break or the end of the text). Only the
// fields lineage and the views use are kept; a field of the wrong type is reported, not fatal.
import { escapeControl } from '../text';
import type { CardFacts } from './types';
import { parsePlainYaml } from './yaml';

export interface ParsedCard {
  /** Null when the card has no front matter or it could not be parsed. */
  facts: CardFacts | null;
  /** Why the front matter was rejected (broken YAML, not a mapping). */
  error?: string;
  /** Fields present with a type the Hub would not accept; they are ignored. */
  warnings: string[];
}

const isLineBreak = (c: string | undefined) => c === '\n' || c === '\r';

/**
 * The raw YAML between the delimiters, or null when the card has none. One pass over the text
 * (a regular expression for this backtracks cubically on an unclosed block followed by many
 * line breaks): the opening `---` and its line breaks, then the first `---` that follows a line
 * break and ends its line.
 */
export function extractFrontMatter(text: string): string | null {
  const open = text.search(/\S/);
  if (open < 0 || !text.startsWith('---', open) || !isLineBreak(text[open + 3])) return null;
  let contentStart = open + 4;
  while (isLineBreak(text[contentStart])) contentStart++;
  for (let at = text.indexOf('---', open + 5); at >= 0; at = text.indexOf('---', at + 1)) {
    if (!isLineBreak(text[at - 1])) continue;
    const after = text[at + 3];
    if (!(after === undefined || after === '\n' || (after === '\r' && text[at + 4] === '\n'))) continue;
    let contentEnd = at - 1;
    while (contentEnd > contentStart && isLineBreak(text[contentEnd - 1])) contentEnd--;
    return contentEnd > contentStart ? text.slice(contentStart, contentEnd) : '';
  }
  return null;
}

export function parseModelCard(text: string): ParsedCard {
  const yamlText = extractFrontMatter(text.startsWith('\ufeff') ? text.slice(1) : text);
  if (yamlText === null) return { facts: null, warnings: [] };
  let parsed;
  try {
    // The core schema builds plain data only; tagged fields come back separately (see yaml.ts).
    parsed = parsePlainYaml(yamlText);
  } catch (error) {
    const message = escapeControl(error instanceof Error ? error.message : String(error));
    return { facts: null, error: `the YAML front matter does not parse (${message}); fix the block between the --- lines`, warnings: [] };
  }
  const { data, tagged } = parsed;
  const tagWarnings = tagged.map(({ key, tag }) => `"${escapeControl(key)}" carries the YAML tag ${escapeControl(tag)}, which Graft does not evaluate; remove the tag`);
  if (data === null || data === undefined) {
    if (tagged.length > 0 && tagged[0].key === '') return { facts: null, error: `the YAML front matter is tagged ${escapeControl(tagged[0].tag)} instead of being a mapping of fields`, warnings: [] };
    return { facts: {}, warnings: [] };
  }
  if (typeof data !== 'object' || Array.isArray(data)) {
    return { facts: null, error: 'the YAML front matter is not a mapping of fields (key: value); the Hub rejects such cards', warnings: [] };
  }
  const result = toFacts(data as Record<string, unknown>);
  result.warnings.unshift(...tagWarnings);
  return result;
}

function toFacts(data: Record<string, unknown>): ParsedCard {
  const warnings: string[] = [];
  const facts: CardFacts = {};
  const stringField = (key: string): string | undefined => {
    const value = data[key];
    if (value === undefined || value === null) return undefined;
    if (typeof value === 'string') return value.trim() || undefined;
    warnings.push(`"${key}" should be a string, found ${describe(value)}`);
    return undefined;
  };
  const listField = (key: string): string[] | undefined => {
    const value = data[key];
    if (value === undefined || value === null) return undefined;
    const items = Array.isArray(value) ? value : [value];
    const strings = items.filter((v): v is string => typeof v === 'string').map((v) => v.trim()).filter(Boolean);
    if (strings.length !== items.length) warnings.push(`"${key}" should be a string or a list of strings; ignored ${items.length - strings.length} other item(s)`);
    return strings.length > 0 ? strings : undefined;
  };

  const set = <K extends keyof CardFacts>(key: K, value: CardFacts[K] | undefined) => {
    if (value !== undefined) facts[key] = value;
  };
  set('baseModel', listField('base_model'));
  set('baseModelRelation', stringField('base_model_relation')?.toLowerCase());
  set('license', stringField('license'));
  set('datasets', listField('datasets'));
  set('language', listField('language'));
  set('tags', listField('tags'));
  set('libraryName', stringField('library_name'));
  set('pipelineTag', stringField('pipeline_tag'));
  set('newVersion', stringField('new_version'));
  set('evalResults', evalResults(data['model-index'], warnings));
  set('co2', co2(data['co2_eq_emissions'], warnings));
  return { facts, warnings };
}

/** model-index: [{ name, results: [{ task: {type, name}, dataset: {type, name}, metrics: [{type, name, value}] }] }] */
function evalResults(value: unknown, warnings: string[]): CardFacts['evalResults'] {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) {
    warnings.push('"model-index" should be a list of models with results');
    return undefined;
  }
  const out: NonNullable<CardFacts['evalResults']> = [];
  for (const model of value) {
    const results = isRecord(model) && Array.isArray(model.results) ? model.results : [];
    for (const result of results) {
      if (!isRecord(result)) continue;
      const task = isRecord(result.task) ? text(result.task.name) ?? text(result.task.type) : undefined;
      const dataset = isRecord(result.dataset) ? text(result.dataset.name) ?? text(result.dataset.type) : undefined;
      for (const metric of Array.isArray(result.metrics) ? result.metrics : []) {
        if (!isRecord(metric)) continue;
        const name = text(metric.name) ?? text(metric.type);
        const metricValue = metric.value;
        if (!name || (typeof metricValue !== 'number' && typeof metricValue !== 'string')) continue;
        out.push({ ...(task ? { task } : {}), ...(dataset ? { dataset } : {}), metric: name, value: metricValue });
      }
    }
  }
  return out.length > 0 ? out : undefined;
}

function co2(value: unknown, warnings: string[]): CardFacts['co2'] {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'number') return { emissions: value };
  if (!isRecord(value)) {
    warnings.push('"co2_eq_emissions" should be a number (grams) or a mapping');
    return undefined;
  }
  const out: NonNullable<CardFacts['co2']> = {};
  if (typeof value.emissions === 'number') out.emissions = value.emissions;
  if (text(value.source)) out.source = text(value.source);
  if (text(value.training_type)) out.trainingType = text(value.training_type);
  if (text(value.hardware_used)) out.hardwareUsed = text(value.hardware_used);
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim() : undefined;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'a mapping' : `${typeof value} ${JSON.stringify(value)}`;
}
