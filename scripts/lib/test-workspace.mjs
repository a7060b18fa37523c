// The workspace the integration suites open: a fresh copy of the reference fixtures in a temp
// folder, so tests may write into it and every run starts from the same files.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** A few files the reference reader rejects, and one it accepts (see formats/bad/VERDICTS.json). */
export const BAD_FIXTURES = ['overlap', 'short_file', 'header_len_zero', 'truncated_data', 'invalid_json', 'ok_two'];

/**
 * Lays out, under `root`:
 *   workspace/zoo/...              test/fixtures/zoo/workspace (symlinks kept as symlinks)
 *   workspace/bad/*.safetensors    BAD_FIXTURES
 *   workspace/formats/all_dtypes.safetensors
 *   workspace/hostile/unclosed-card/  a model whose README.md opens its front matter and never
 *                                  closes it, then 20,000 line breaks (the card of issue 12)
 *   workspace/.vscode/settings.json  points Graft at the copied Hugging Face cache
 *   hf-cache/hub/...               test/fixtures/zoo/hf-cache, outside the workspace on purpose
 * and writes the layout to root/layout.json (the suites read it through GRAFT_TEST_LAYOUT).
 */
export function createTestWorkspace(repoRoot, root) {
  const fixtures = path.join(repoRoot, 'test', 'fixtures');
  const workspace = path.join(root, 'workspace');
  const hfCache = path.join(root, 'hf-cache');
  const copy = (from, to) => fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });

  copy(path.join(fixtures, 'zoo', 'workspace'), path.join(workspace, 'zoo'));
  copy(path.join(fixtures, 'zoo', 'hf-cache'), hfCache);
  fs.mkdirSync(path.join(workspace, 'bad'), { recursive: true });
  for (const name of BAD_FIXTURES) {
    copy(path.join(fixtures, 'formats', 'bad', `${name}.safetensors`), path.join(workspace, 'bad', `${name}.safetensors`));
  }
  copy(path.join(fixtures, 'formats', 'all_dtypes.safetensors'), path.join(workspace, 'formats', 'all_dtypes.safetensors'));
  const hostileCard = path.join(workspace, 'hostile', 'unclosed-card');
  fs.mkdirSync(hostileCard, { recursive: true });
  copy(path.join(fixtures, 'formats', 'one_f32.safetensors'), path.join(hostileCard, 'model.safetensors'));
  fs.writeFileSync(path.join(hostileCard, 'config.json'), '{"model_type": "llama"}\n');
  fs.writeFileSync(path.join(hostileCard, 'README.md'), '---\nbase_model: acme/never-closed\n' + '\n'.repeat(20_000) + 'The front matter above is never closed.\n');

  const hfCacheHub = path.join(hfCache, 'hub');
  fs.mkdirSync(path.join(workspace, '.vscode'), { recursive: true });
  fs.writeFileSync(path.join(workspace, '.vscode', 'settings.json'), JSON.stringify({
    'graft.huggingFaceCache.path': hfCacheHub,
    'graft.huggingFaceCache.enabled': true,
  }, null, 2));

  const verdicts = JSON.parse(fs.readFileSync(path.join(fixtures, 'formats', 'bad', 'VERDICTS.json'), 'utf8'));
  const layout = {
    workspace,
    zoo: path.join(workspace, 'zoo'),
    bad: path.join(workspace, 'bad'),
    formats: path.join(workspace, 'formats'),
    hostileCard,
    hfCacheHub,
    badFiles: BAD_FIXTURES.filter((name) => !verdicts[name]?.accepted).map((name) => path.join(workspace, 'bad', `${name}.safetensors`)),
    goodFiles: BAD_FIXTURES.filter((name) => verdicts[name]?.accepted).map((name) => path.join(workspace, 'bad', `${name}.safetensors`)),
  };
  const layoutFile = path.join(root, 'layout.json');
  fs.writeFileSync(layoutFile, JSON.stringify(layout, null, 2));
  return { ...layout, layoutFile };
}
