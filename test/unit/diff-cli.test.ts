import assert from 'node:assert/strict';
import test from 'node:test';
import { diffCommand } from '../../src/cli/commands/diff';
import { UsageError, type CliContext } from '../../src/cli/context';
import { diffTasks } from '../../src/core/diff/tasks';
import type { DiffReport } from '../../src/core/diff/types';
import { InlineRunner, type TaskRunner } from '../../src/core/engine/pool';
import type { GraftTasks } from '../../src/worker/tasks';
import { fixture } from './helpers';

/** A context whose kernels run inline and whose output is captured. */
function context(): CliContext & { out: string; err: string } {
  const ctx = {
    out: '',
    err: '',
    cwd: fixture('zoo', 'workspace', 'models'),
    signal: new AbortController().signal,
    stdout(text: string) {
      ctx.out += text;
    },
    stderr(text: string) {
      ctx.err += text;
    },
    // The diff only runs diffChunk; the other kernels of the registry are not needed here.
    runner: () => new InlineRunner(diffTasks) as unknown as TaskRunner<GraftTasks>,
  };
  return ctx;
}

test('graft diff --json prints the DiffReport', async () => {
  const ctx = context();
  assert.equal(await diffCommand.run(['tiny-llama-math', 'tiny-llama-code', '--base', 'tiny-llama-base', '--json'], ctx), 0);
  const report = JSON.parse(ctx.out) as DiffReport;
  assert.equal(report.tensors.length, 57);
  for (const t of report.tensors) {
    for (const key of ['name', 'layer', 'module', 'numel', 'l2_diff', 'rel_l2', 'cosine', 'max_abs_diff', 'frac_changed', 'cosine_tv', 'sign_agreement', 'conflict']) {
      assert.ok(key in t, `${t.name} lacks ${key}`);
    }
  }
  const q = report.tensors.find((t) => t.name === 'model.layers.1.self_attn.q_proj.weight')!;
  assert.deepEqual([q.layer, q.module, q.group], [1, 'self_attn.q_proj', 'layers']);
  assert.deepEqual([report.only_in_a, report.only_in_b, report.shape_mismatch], [[], [], []]);
  assert.equal(report.summary.mode, 'exact');
  assert.equal(typeof report.summary.cosine_tv, 'number');
  // The embedding rows math and code changed are disjoint: no sign to agree on.
  assert.equal(report.tensors.find((t) => t.name === 'model.embed_tokens.weight')!.sign_agreement, null);
  assert.equal(ctx.err, '', 'no progress output when stderr is not a terminal');
});

test('graft diff prints a summary, the top-N table and the per-layer table', async () => {
  const ctx = context();
  assert.equal(await diffCommand.run(['tiny-llama-base', 'tiny-llama-base-v2', '--top', '3'], ctx), 0);
  const out = ctx.out;
  assert.match(out, /^a: tiny-llama-base\nb: tiny-llama-base-v2\n/);
  assert.match(out, /57 tensors compared, 324,416 elements, exact/);
  assert.match(out, /relative l2 0\.3230 {3}cosine 0\.951279/);
  const top = out.split('Most changed tensors')[1].split('Per layer:')[0].trim().split('\n');
  assert.equal(top.length, 1 + 1 + 3, 'title, header and three rows');
  assert.match(top[1], /tensor\s+numel\s+rel_l2\s+cosine/);
  const perLayer = out.split('Per layer:\n')[1].trim().split('\n');
  // header + layers 0..5 + the non-layer row (embeddings, final norm, head)
  assert.equal(perLayer.length, 1 + 6 + 1);
  assert.match(perLayer[1], /^\s+layers\s+0\s+9\s+43,136\s/);
  assert.match(perLayer[7], /^\s+non-layer\s+-\s+3\s+65,600\s/);
});

test('graft diff --quick says the figures are sampled', async () => {
  const ctx = context();
  assert.equal(await diffCommand.run(['tiny-llama-base', 'tiny-llama-math', '--quick', '--json'], ctx), 0);
  const report = JSON.parse(ctx.out) as DiffReport;
  assert.equal(report.summary.mode, 'quick');
  assert.ok(report.tensors.every((t) => t.sampled));
  const human = context();
  await diffCommand.run(['tiny-llama-base', 'tiny-llama-math', '--quick', '--top', '0'], human);
  assert.match(human.out, /quick \(sampled; run without --quick for exact figures\)/);
  assert.doesNotMatch(human.out, /Most changed/);
});

test('graft diff rejects bad arguments and says what is wrong', async () => {
  await assert.rejects(diffCommand.run(['tiny-llama-base'], context()), (e: Error) => e instanceof UsageError && /two checkpoints/.test(e.message));
  await assert.rejects(diffCommand.run(['a', 'b', 'c'], context()), (e: Error) => e instanceof UsageError && /expected two checkpoints, got 3/.test(e.message));
  await assert.rejects(diffCommand.run(['tiny-llama-base', 'tiny-llama-math', '--top', 'many'], context()), (e: Error) => e instanceof UsageError && /--top/.test(e.message));
  await assert.rejects(diffCommand.run(['tiny-llama-base', 'tiny-llama-math', '--colour'], context()), UsageError);
  await assert.rejects(diffCommand.run(['tiny-llama-base', 'no-such-model'], context()), (e: Error) => e instanceof UsageError && e.message === '"no-such-model" does not exist.');
  await assert.rejects(diffCommand.run(['tiny-llama-base', '../../../formats/bad/duplicate_key.safetensors'], context()), /cannot open "\.\.\/\.\.\/\.\.\/formats\/bad\/duplicate_key\.safetensors": .*invalid offset for tensor `a`/);
});

test('graft diff of two architectures says nothing was compared instead of printing figures', async () => {
  const ctx = context();
  assert.equal(await diffCommand.run(['tiny-gpt2', 'tiny-bert'], ctx), 0);
  assert.match(ctx.out, /0 tensors compared, 0 elements/);
  assert.match(ctx.out, /No tensor has the same name and shape in both checkpoints, so nothing was compared/);
  assert.doesNotMatch(ctx.out, /cosine/);
  assert.match(ctx.out, /only in a \(40\): transformer\.h\.0\.attn\.c_attn\.bias/);
});
