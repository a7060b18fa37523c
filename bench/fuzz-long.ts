// The long fuzz run of the safetensors reader: the mutations of test/unit/fuzz.test.ts, many more
// of them (GRAFT_FUZZ_CASES, default 200000) from GRAFT_FUZZ_SEED. Fails on the first case that
// ends in anything but a valid header or a SafetensorsError, that reads more bytes than the file
// holds, or on which the header fast paths disagree with the exact computations (the
// differential check of test/unit/safetensors-fast-path.test.ts), and prints that file (base64)
// to reproduce it. Prints how the cases ended and how often the fast path decided.
//
// Run: npx tsc -p . && node out/bench/fuzz-long.js
import { compareWithExact, fuzzCase, Rng, runCase, seedFiles } from '../test/unit/fuzz-mutations';

const CASES = Number(process.env.GRAFT_FUZZ_CASES ?? 200_000);
const SEED = Number(process.env.GRAFT_FUZZ_SEED ?? 1);

async function main(): Promise<void> {
  const seeds = seedFiles();
  const rng = new Rng(SEED);
  const outcomes = new Map<string, number>();
  const paths = { fastAccepted: 0, fastRejectedLater: 0, declinedAccepted: 0, declinedRejected: 0, noHeader: 0 };
  const started = performance.now();
  let slowest = 0;
  for (let i = 0; i < CASES; i++) {
    const file = fuzzCase(i, seeds, rng);
    const t0 = performance.now();
    let key: string;
    try {
      const outcome = await runCase(file);
      if (outcome.bytesRequested > file.length) throw new Error(`read ${outcome.bytesRequested} bytes of a ${file.length}-byte file`);
      key = outcome.accepted ? 'accepted' : outcome.error!.rule;
      slowest = Math.max(slowest, performance.now() - t0);
      const differential = compareWithExact(file);
      if (!differential.hasHeader) paths.noHeader++;
      else if (differential.fastPath) paths[differential.accepted ? 'fastAccepted' : 'fastRejectedLater']++;
      else paths[differential.accepted ? 'declinedAccepted' : 'declinedRejected']++;
    } catch (error) {
      console.error(`case ${i} (seed ${SEED}) failed: ${error instanceof Error ? error.stack : String(error)}`);
      console.error(`file (base64): ${Buffer.from(file).toString('base64')}`);
      process.exitCode = 1;
      return;
    }
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    if ((i + 1) % 50_000 === 0) console.log(`  ${i + 1} cases…`);
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${CASES} cases (seed ${SEED}) in ${seconds.toFixed(1)} s, ${Math.round(CASES / seconds)} cases/s, slowest read ${slowest.toFixed(1)} ms; no unexpected exception`);
  const width = Math.max(...[...outcomes.keys()].map((k) => k.length));
  for (const [key, count] of [...outcomes].sort((a, b) => b[1] - a[1])) console.log(`  ${key.padEnd(width)}  ${String(count).padStart(7)}`);
  console.log(
    `fast paths agree with the exact computations on every case: JSON scanner took ${paths.fastAccepted + paths.fastRejectedLater} ` +
      `(${paths.fastAccepted} accepted, ${paths.fastRejectedLater} rejected by the validation after it), declined ${paths.declinedAccepted + paths.declinedRejected} ` +
      `(${paths.declinedAccepted} accepted, ${paths.declinedRejected} rejected by the exact parser or after it), no header ${paths.noHeader}`,
  );
}

void main();
