// Where the runner put the test workspace (scripts/lib/test-workspace.mjs writes the layout file).
import * as fs from 'node:fs';

export interface TestLayout {
  /** The workspace folder VS Code opened. */
  workspace: string;
  /** Copy of test/fixtures/zoo/workspace (models/, adapters/, merges/, runs/). */
  zoo: string;
  /** A few malformed safetensors files and one valid one. */
  bad: string;
  /** Holds all_dtypes.safetensors. */
  formats: string;
  /** A model folder whose README.md never closes its front matter, followed by 20,000 line breaks. */
  hostileCard: string;
  /** The Hugging Face cache hub folder, outside the workspace; graft.huggingFaceCache.path points here. */
  hfCacheHub: string;
  /** Files in `bad` the reference reader rejects. */
  badFiles: string[];
  /** Files in `bad` the reference reader accepts. */
  goodFiles: string[];
}

let cached: TestLayout | undefined;

export function testLayout(): TestLayout {
  if (cached) return cached;
  const file = process.env.GRAFT_TEST_LAYOUT;
  if (!file) throw new Error('GRAFT_TEST_LAYOUT is not set: run the suite through scripts/test-integration.mjs, which creates the test workspace.');
  cached = JSON.parse(fs.readFileSync(file, 'utf8')) as TestLayout;
  return cached;
}
