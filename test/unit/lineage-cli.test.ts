import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import test from 'node:test';
import { formatLineageTree, lineageCommand } from '../../src/cli/commands/lineage';
import { UsageError, type CliContext } from '../../src/cli/context';
import { runCli } from '../../src/cli/main';
import { InlineRunner } from '../../src/core/engine/pool';
import type { LineageGraph } from '../../src/core/lineage';
import { workerTasks } from '../../src/worker/tasks';
import { fixture, tempDir } from './helpers';

/** A context whose kernels run inline and whose output is captured. */
function context(cwd = fixture('zoo')): CliContext & { out: string; err: string } {
  const ctx = {
    out: '',
    err: '',
    cwd,
    signal: new AbortController().signal,
    stdout(text: string) {
      ctx.out += text;
    },
    stderr(text: string) {
      ctx.err += text;
    },
    runner: () => new InlineRunner(workerTasks),
  };
  return ctx;
}

test('graft lineage --json prints the graph: ids relative to the folder, declared and inferred edges', async () => {
  const ctx = context();
  assert.equal(await lineageCommand.run(['workspace', '--json'], ctx), 0);
  assert.equal(ctx.err, '');
  const graph = JSON.parse(ctx.out) as LineageGraph;
  assert.deepEqual(Object.keys(graph), ['nodes', 'edges']);
  assert.equal(graph.nodes.length, 11);
  const base = graph.nodes.find((n) => n.id === 'models/tiny-llama-base')!;
  assert.deepEqual({ kind: base.kind, hubId: base.hubId, locations: base.locations, label: base.label }, {
    kind: 'base', hubId: 'acme/tiny-llama-base', locations: [fixture('zoo', 'workspace', 'models', 'tiny-llama-base')], label: 'tiny-llama-base',
  });
  assert.deepEqual(graph.edges.find((e) => e.child === 'runs/math-sft/checkpoint-10'), {
    parent: 'models/tiny-llama-base', child: 'runs/math-sft/checkpoint-10', relation: 'finetune', source: 'weights', confidence: graph.edges.find((e) => e.child === 'runs/math-sft/checkpoint-10')!.confidence,
  });
  for (const edge of graph.edges) {
    assert.ok(['finetune', 'adapter', 'merge', 'quantized', 'checkpoint', 'copy'].includes(edge.relation));
    assert.ok(['card', 'adapter_config', 'mergekit_config', 'trainer', 'provenance', 'weights'].includes(edge.source));
  }

  const declared = context();
  await lineageCommand.run(['workspace', '--json', '--no-infer'], declared);
  assert.equal((JSON.parse(declared.out) as LineageGraph).edges.some((e) => e.source === 'weights'), false);
});

test('the HF cache is scanned only when asked, and then its snapshots join the local models', async () => {
  const plain = context();
  await lineageCommand.run(['workspace', '--json', '--no-hf-cache'], plain);
  const withoutCache = JSON.parse(plain.out) as LineageGraph;
  assert.equal(withoutCache.nodes.find((n) => n.id === 'models/tiny-llama-math')!.locations!.length, 1);

  const cached = context();
  await lineageCommand.run(['workspace', '--json', '--hf-cache', 'hf-cache/hub'], cached);
  const math = (JSON.parse(cached.out) as LineageGraph).nodes.find((n) => n.id === 'models/tiny-llama-math')!;
  assert.equal(math.revision, 'aa11bb22cc33dd44ee55ff6677889900aabbccdd');
  assert.equal(math.locations!.length, 2);
});

test('the human output is a tree from the bases down, with relation and source on every link', async () => {
  const ctx = context();
  assert.equal(await lineageCommand.run(['workspace'], ctx), 0);
  const lines = ctx.out.split('\n');
  assert.ok(lines.includes('models/tiny-llama-base  (base, acme/tiny-llama-base, 324.4K params, BF16)'), ctx.out);
  assert.ok(lines.some((l) => /^├── \[finetune <- card\] models\/tiny-llama-math {2}\(finetune/.test(l)), ctx.out);
  assert.ok(lines.some((l) => /^└── \[finetune <- weights 0\.\d\d\] runs\/math-sft\/checkpoint-10/.test(l)), ctx.out);
  assert.ok(lines.some((l) => /^ {4}└── \[checkpoint <- trainer\] runs\/math-sft\/checkpoint-20/.test(l)), ctx.out);
  assert.ok(lines.some((l) => /\[merge <- mergekit_config\] merges\/tiny-llama-math-code-ties {2}\(see above\)/.test(l)), 'a merge is printed once and referenced under its other parents');
  assert.ok(lines.includes('models/tiny-bert  (base, 68.1K params, F32)'));
  assert.match(ctx.out, /11 models, 10 links \(9 declared, 1 inferred from weights\)\.\n$/);

  const undirected: LineageGraph = {
    nodes: [{ id: 'a', kind: 'base', label: 'a' }, { id: 'b', kind: 'finetune', label: 'b' }],
    edges: [{ parent: 'a', child: 'b', relation: 'finetune', source: 'weights', confidence: 0.5, undirected: true }],
  };
  assert.match(formatLineageTree(undirected), /└── \[finetune <- weights 0\.50, direction unsure\] b/);
});

test('scan problems are warnings on stderr; the graph is still printed', async () => {
  const dir = tempDir();
  try {
    fs.cpSync(fixture('zoo', 'workspace', 'models', 'tiny-gpt2'), path.join(dir, 'gpt2'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'gpt2', 'README.md'), '---\n: [\n---\n');
    const ctx = context(dir);
    assert.equal(await lineageCommand.run(['.', '--json'], ctx), 0);
    assert.match(ctx.err, /^graft lineage: warning: gpt2\/README.md: model card ignored: the YAML front matter does not parse/);
    assert.equal((JSON.parse(ctx.out) as LineageGraph).nodes.length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true });
  }
});

test('bad arguments are usage errors (exit 2) that say what to fix', async () => {
  const ctx = context();
  await assert.rejects(lineageCommand.run([], ctx), (e: Error) => e instanceof UsageError && /give the folder to scan/.test(e.message));
  await assert.rejects(lineageCommand.run(['a', 'b'], ctx), /expected one folder, got 2/);
  await assert.rejects(lineageCommand.run(['no-such-folder'], ctx), /<dir> ".*no-such-folder" does not exist; check the path/);
  await assert.rejects(lineageCommand.run(['LINEAGE.json'], ctx), /is a file; give the folder/);
  await assert.rejects(lineageCommand.run(['workspace', '--hf-cache', 'x', '--no-hf-cache'], ctx), /contradict/);
  await assert.rejects(lineageCommand.run(['workspace', '--hf-cache', 'nowhere'], ctx), /--hf-cache .*nowhere" does not exist/);
  await assert.rejects(lineageCommand.run(['workspace', '--infer'], ctx), UsageError);

  let err = '';
  const code = await runCli(['lineage'], { stdout: () => {}, stderr: (t) => (err += t) });
  assert.equal(code, 2);
  assert.match(err, /graft lineage: give the folder to scan\.\n\nUsage: graft lineage <dir>/);
  let out = '';
  assert.equal(await runCli(['lineage', '--help'], { stdout: (t) => (out += t), stderr: () => {} }), 0);
  assert.match(out, /--no-infer {6}only declared edges/);
});
