// The long fuzz run of the safetensors reader: the mutations of test/unit/fuzz.test.ts, many more
// of them (GRAFT_FUZZ_CASES, default 200000) from GRAFT_FUZZ_SEED. Fails on the first case that
// ends in anything but a valid header or a SafetensorsError, or that reads more bytes than the
// file holds, and prints that file (base64) to reproduce it. Prints how the cases ended.
//
// Run: npx tsc -p . && node out/bench/fuzz-long.js
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mutate, mutateHeader, Rng, runCase } from '../test/unit/fuzz-mutations';
import { fixture } from '../test/unit/helpers';

const CASES = Number(process.env.GRAFT_FUZZ_CASES ?? 200_000);
const SEED = Number(process.env.GRAFT_FUZZ_SEED ?? 1);

async function main(): Promise<void> {
  const seeds = [fixture('formats'), fixture('formats', 'bad')].flatMap((dir) =>
    fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f)))),
  );
  const rng = new Rng(SEED);
  const outcomes = new Map<string, number>();
  const started = performance.now();
  let slowest = 0;
  for (let i = 0; i < CASES; i++) {
    const file = (i % 2 === 0 ? mutate : mutateHeader)(rng.pick(seeds), rng);
    const t0 = performance.now();
    let key: string;
    try {
      const outcome = await runCase(file);
      if (outcome.bytesRequested > file.length) throw new Error(`read ${outcome.bytesRequested} bytes of a ${file.length}-byte file`);
      key = outcome.accepted ? 'accepted' : outcome.error!.rule;
    } catch (error) {
      console.error(`case ${i} (seed ${SEED}) failed: ${error instanceof Error ? error.stack : String(error)}`);
      console.error(`file (base64): ${Buffer.from(file).toString('base64')}`);
      process.exitCode = 1;
      return;
    }
    slowest = Math.max(slowest, performance.now() - t0);
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if ((i + 1) % 50_000 === 0) console.log(`  ${i + 1} cases…`);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${CASES} cases (seed ${SEED}) in ${seconds.toFixed(1)} s, ${Math.round(CASES / seconds)} cases/s, slowest case ${slowest.toFixed(1)} ms; no unexpected exception`);
  const width = Math.max(...[...outcomes.keys()].map((k) => k.length));
  for (const [key, count] of [...outcomes].sort((a, b) => b[1] - a[1])) console.log(`  ${key.padEnd(width)}  ${String(count).padStart(7)}`);
}

void main();
