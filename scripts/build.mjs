// Bundles every entry point with esbuild: extension host, worker, CLI (Node, CommonJS) and one
// browser bundle per webview, and compiles the WebAssembly kernels (kernels/*.ts, AssemblyScript)
// into dist/graft-kernels.wasm beside them. `--watch` rebuilds on change; `--production` minifies.
import asc from 'assemblyscript/dist/asc.js';
import * as esbuild from 'esbuild';
import * as fs from 'node:fs';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

const node = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  logLevel: 'warning',
};

const builds = [
  { ...node, entryPoints: { extension: 'src/extension/main.ts' }, outdir: 'dist', external: ['vscode'] },
  { ...node, entryPoints: { worker: 'src/worker/main.ts' }, outdir: 'dist' },
  { ...node, entryPoints: { cli: 'src/cli/main.ts' }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
  {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: production ? false : 'inline',
    minify: production,
    logLevel: 'warning',
    entryPoints: Object.fromEntries(
      fs.readdirSync('webview', { withFileTypes: true })
        .filter((d) => d.isDirectory() && fs.existsSync(`webview/${d.name}/main.ts`))
        .map((d) => [d.name, `webview/${d.name}/main.ts`]),
    ),
    outdir: 'dist/webview',
  },
];

/** kernels/index.ts -> dist/graft-kernels.wasm: SIMD on, no runtime (the kernels allocate nothing), no imports. */
async function buildKernels() {
  fs.mkdirSync('dist', { recursive: true });
  const output = [];
  const { error } = await asc.main(
    ['kernels/index.ts', '--outFile', 'dist/graft-kernels.wasm', '-O3', '--runtime', 'stub', '--enable', 'simd', '--noAssert'],
    { stdout: { write: (text) => output.push(String(text)) }, stderr: { write: (text) => output.push(String(text)) } },
  );
  if (error) throw new Error(`Compiling the WebAssembly kernels failed: ${error.message}\n${output.join('')}`);
}

await buildKernels();
if (watch) {
  for (const options of builds) await (await esbuild.context(options)).watch();
  console.log('watching for changes…');
} else {
  await Promise.all(builds.map((options) => esbuild.build(options)));
  fs.chmodSync('dist/cli.js', 0o755);
}
