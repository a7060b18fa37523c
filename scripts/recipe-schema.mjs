// Writes media/recipe.schema.json (contributed through yamlValidation) from the method registry.
// Run after `tsc -p .`: `npm run schema`. test/unit/recipe-schema.test.ts fails when the file and
// the registry disagree.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { recipeJsonSchema } = createRequire(import.meta.url)(path.join(repoRoot, 'out', 'src', 'core', 'merge', 'recipe', 'schema.js'));
const target = path.join(repoRoot, 'media', 'recipe.schema.json');
fs.writeFileSync(target, JSON.stringify(recipeJsonSchema(), null, 2) + '\n');
console.log(`wrote ${path.relative(repoRoot, target)}`);
