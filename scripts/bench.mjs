// Runs every benchmark in out/bench/ (compiled from bench/*.ts) one after another, each in its
// own process so peak-memory figures don't leak between them. `npm run bench -- diff` runs only
// benchmarks whose file name contains "diff".
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const dir = path.join('out', 'bench');
const filter = process.argv[2] ?? '';
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.js') && f.includes(filter)).sort() : [];
if (files.length === 0) {
  console.error(`No benchmarks${filter ? ` matching "${filter}"` : ''} in ${dir}: run \`npm run bench\` (it compiles them first).`);
  process.exit(1);
}
let failed = 0;
for (const file of files) {
  console.log(`\n=== ${file.replace(/\.js$/, '')} ===`);
  const result = spawnSync(process.execPath, ['--expose-gc', path.join(dir, file)], { stdio: 'inherit' });
  if (result.status !== 0) {
    failed++;
    console.error(`${file} exited with ${result.status ?? result.signal}`);
  }
}
process.exit(failed ? 1 : 0);
