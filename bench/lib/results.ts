// Machine-readable benchmark results: each benchmark writes bench-results/<name>.json (or under
// GRAFT_BENCH_RESULTS) with the machine it ran on beside the printed table.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { repoRoot } from '../../test/unit/helpers';

export interface BenchResults {
  /** The printed table: header and rows as shown. */
  header: readonly string[];
  rows: readonly (readonly string[])[];
  /** Anything else worth keeping: verdicts, result checks, parameters. */
  notes?: readonly string[];
  [key: string]: unknown;
}

/** Writes the results of benchmark `name`; returns the file written. */
export function writeResults(name: string, results: BenchResults, startLoad: number[]): string {
  const dir = process.env.GRAFT_BENCH_RESULTS ?? path.join(repoRoot, 'bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: startLoad.map((l) => Number(l.toFixed(2))),
    loadAverageAtEnd: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
  fs.writeFileSync(file, JSON.stringify({ benchmark: name, date: new Date().toISOString(), machine, ...results }, null, 2) + '\n');
  return file;
}
