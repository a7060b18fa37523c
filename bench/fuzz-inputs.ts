// The long fuzz run of everything else Graft reads from strangers (bench/fuzz-long.ts covers the
// safetensors headers): model cards, config.json / adapter_config.json / trainer_state.json /
// mergekit_config.yml / graft_provenance.json, GGUF headers and *.safetensors.index.json files.
// Each case mutates a valid seed (byte flips, cuts, repeats, splices of hostile fragments: unclosed
// front matter with many line breaks, YAML tags and alias bombs, escape codes, huge counts) and
// runs the real reader. A case fails the run when it ends in anything but a result or the
// reader's own error (a clear message), and the slowest case of each kind is printed: no input may
// make a reader hang or grow without bound.
//
// Run: npm run bench -- fuzz-inputs   (GRAFT_FUZZ_INPUT_CASES per kind, default 20000; GRAFT_FUZZ_SEED)
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseAdapterFacts, parseConfigFacts, parseMergekitFacts, parseModelCard, parseProvenanceFacts, parseTrainerFacts } from '../src/core/catalog';
import { GGUF_CATALOG_LIMITS, GgufError, GgufValueType, readGgufHeader, writeGguf } from '../src/core/gguf';
import { openCheckpoint, SafetensorsError, writeSafetensors } from '../src/core/safetensors';
import { Rng } from '../test/unit/fuzz-mutations';
import { machineLine } from './lib/measure';
import { printTable } from './lib/table';

const CASES = Number(process.env.GRAFT_FUZZ_INPUT_CASES ?? 20_000);
const SEED = Number(process.env.GRAFT_FUZZ_SEED ?? 1);

/** Fragments a hostile author would splice in. */
const FRAGMENTS = [
  '---', '---\n', '\n'.repeat(5000), '\r\n'.repeat(2000), '!!python/object/apply:os.system ["x"]', '!!binary aGk=', '&a [1,2]', '*a',
  '&a [*b,*b,*b,*b,*b,*b,*b,*b]', '{', '}', '[', ']', '"', '\\', '\u0000', '\x1b]0;title\x07', '\x1b[2J', '\r', '\u202e', '\ufeff',
  ': ', '- ', '#', '  ', '%YAML 1.1\n', '? ', '|', '>', 'base_model: ', 'null', '1e999', '-0', '18446744073709551616', '"\\ud800"',
];

function mutateText(text: string, rng: Rng): string {
  let out = text;
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = rng.int(out.length + 1);
    switch (rng.int(5)) {
      case 0: out = out.slice(0, at) + rng.pick(FRAGMENTS) + out.slice(at); break;
      case 1: out = out.slice(0, at); break;
      case 2: out = out.slice(0, at) + out.slice(at + 1 + rng.int(20)); break;
      case 3: out = out.slice(0, at) + out.slice(at, at + 1 + rng.int(30)).repeat(1 + rng.int(200)) + out.slice(at); break;
      default: out = out.slice(0, at) + String.fromCharCode(rng.int(0x3000)) + out.slice(at + 1);
    }
  }
  return out;
}

function mutateBytes(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = Buffer.from(bytes);
  const edits = 1 + rng.int(4);
  let result: Buffer = out;
  for (let e = 0; e < edits; e++) {
    const at = rng.int(result.length);
    switch (rng.int(4)) {
      case 0: result[at] = rng.int(256); break;
      case 1: result = result.subarray(0, at); break;
      // A count or length field set to something huge.
      case 2: if (at + 8 <= result.length) result.writeBigUInt64LE(BigInt(rng.pick([0xffffffff, 2 ** 40, 2 ** 53, 1 << 20])) + BigInt(rng.int(8)), at); break;
      default: result = Buffer.concat([result.subarray(0, at), Buffer.from(rng.pick(FRAGMENTS)), result.subarray(at)]);
    }
    if (result.length === 0) break;
  }
  return result;
}

const CARD = `---
base_model: acme/tiny-llama-base
base_model_relation: finetune
license: apache-2.0
datasets: [gsm8k, math]
language: [en]
tags: [math, lora]
model-index:
- name: m
  results:
  - task: {type: text-generation}
    dataset: {name: gsm8k}
    metrics: [{type: accuracy, value: 0.5}]
co2_eq_emissions: {emissions: 12, source: estimate}
---
# Tiny llama math
`;

const CONFIGS: [string, (text: string) => unknown][] = [
  ['{"architectures":["LlamaForCausalLM"],"model_type":"llama","_name_or_path":"acme/x","torch_dtype":"bfloat16","quantization_config":{"bits":4,"quant_method":"gptq"}}', parseConfigFacts],
  ['{"base_model_name_or_path":"acme/x","peft_type":"LORA","r":8,"lora_alpha":16,"target_modules":["q_proj","v_proj"],"task_type":"CAUSAL_LM"}', parseAdapterFacts],
  ['{"global_step":20,"epoch":1.5,"best_model_checkpoint":"runs/x/checkpoint-20"}', (t) => parseTrainerFacts(t, '/runs/x')],
  ['merge_method: ties\nbase_model: acme/base\nmodels:\n  - model: acme/a\n    parameters: {weight: 0.5}\n  - model: acme/b\ndtype: bfloat16\n', parseMergekitFacts],
  ['{"tool":"graft","version":1,"created":"2026-01-01T00:00:00Z","method":"ties","base":"acme/base","models":[{"model":"acme/a"}],"recipe":{"density":0.5}}', parseProvenanceFacts],
];

interface Tally {
  ok: number;
  refused: number;
  slowestMs: number;
}

async function run(kind: string, tallies: Map<string, Tally>, once: () => Promise<'ok' | 'refused'>, describe: () => string): Promise<void> {
  const tally = tallies.get(kind) ?? { ok: 0, refused: 0, slowestMs: 0 };
  tallies.set(kind, tally);
  const started = performance.now();
  let outcome: 'ok' | 'refused';
  try {
    outcome = await once();
  } catch (error) {
    console.error(`${kind}: unexpected ${error instanceof Error ? error.stack : String(error)}\ninput: ${describe()}`);
    throw error;
  }
  tally[outcome]++;
  tally.slowestMs = Math.max(tally.slowestMs, performance.now() - started);
}

/** A reader's own refusal: an error with a message, not a bug (TypeError, RangeError, stack overflow...). */
function isClearRefusal(error: unknown, ...kinds: (new (...args: never[]) => Error)[]): boolean {
  if (kinds.some((k) => error instanceof k)) return true;
  if (!(error instanceof Error) || error instanceof TypeError || error instanceof RangeError || error instanceof ReferenceError || error instanceof SyntaxError) return false;
  return error.message.length > 0 && !/Maximum call stack|Invalid string length|out of memory/i.test(error.message);
}

async function main(): Promise<void> {
  console.log(machineLine());
  const rng = new Rng(SEED);
  const tallies = new Map<string, Tally>();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-fuzz-inputs-'));
  const started = performance.now();
  try {
    for (let i = 0; i < CASES; i++) {
      const card = mutateText(CARD, rng);
      await run('model card', tallies, async () => {
        const parsed = parseModelCard(card);
        return parsed.error ? 'refused' : 'ok';
      }, () => JSON.stringify(card));
      const [seed, parse] = rng.pick(CONFIGS);
      const config = mutateText(seed, rng);
      await run('configs (json, yaml)', tallies, async () => {
        try {
          parse(config);
          return 'ok';
        } catch (error) {
          if (isClearRefusal(error)) return 'refused';
          throw error;
        }
      }, () => JSON.stringify(config));
    }

    // GGUF headers: mutations of a small valid file, read with the catalog's caps.
    const ggufSeed = path.join(dir, 'seed.gguf');
    await writeGguf(ggufSeed, {
      metadata: [
        { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
        { key: 'general.name', type: GgufValueType.STRING, value: 'tiny' },
        { key: 'general.base_model.count', type: GgufValueType.UINT32, value: 1 },
        { key: 'general.base_model.0.repo_url', type: GgufValueType.STRING, value: 'https://huggingface.co/acme/base' },
        { key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, value: { itemType: GgufValueType.STRING, length: 4, items: ['a', 'b', 'c', 'd'] } },
        { key: 'llama.context_length', type: GgufValueType.UINT64, value: 2048n },
      ],
      tensors: [{ name: 'token_embd.weight', dims: [4, 2], type: 0, data: new Uint8Array(32) }, { name: 'output.weight', dims: [4, 2], type: 1, data: new Uint8Array(16) }],
    });
    const ggufBytes = fs.readFileSync(ggufSeed);
    const ggufCase = path.join(dir, 'case.gguf');
    for (let i = 0; i < CASES; i++) {
      const bytes = mutateBytes(ggufBytes, rng);
      fs.writeFileSync(ggufCase, bytes);
      await run('GGUF headers', tallies, () => readGgufHeader(ggufCase, GGUF_CATALOG_LIMITS).then(() => 'ok' as const, (error: unknown) => {
        if (isClearRefusal(error, GgufError)) return 'refused' as const;
        throw error;
      }), () => Buffer.from(bytes).toString('base64'));
    }

    // Index files of a two-shard set.
    const model = path.join(dir, 'model');
    fs.mkdirSync(model);
    const f32 = new Uint8Array(new Float32Array([1, 2]).buffer);
    await writeSafetensors(path.join(model, 'model-00001-of-00002.safetensors'), [{ name: 'a', dtype: 'F32', shape: [2], data: f32 }]);
    await writeSafetensors(path.join(model, 'model-00002-of-00002.safetensors'), [{ name: 'b', dtype: 'F32', shape: [2], data: f32 }]);
    const index = JSON.stringify({ metadata: { total_size: 16 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } });
    const indexFile = path.join(model, 'model.safetensors.index.json');
    for (let i = 0; i < CASES; i++) {
      const text = mutateText(index, rng);
      fs.writeFileSync(indexFile, text);
      await run('index files', tallies, () => openCheckpoint(indexFile).then(() => 'ok' as const, (error: unknown) => {
        if (error instanceof SafetensorsError) return 'refused' as const;
        throw error;
      }), () => JSON.stringify(text));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${CASES} cases per kind (seed ${SEED}) in ${seconds.toFixed(1)} s; every case ended in a result or a clear refusal`);
  printTable(['kind', 'read', 'refused', 'slowest ms'], [...tallies].map(([kind, t]) => [kind, String(t.ok), String(t.refused), t.slowestMs.toFixed(1)]));
}

main().catch(() => {
  process.exitCode = 1;
});
