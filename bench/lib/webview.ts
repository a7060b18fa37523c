// A stand-in for VS Code's webview host page, for the webview benchmarks: a page that loads one
// bundle (dist/webview/<name>.js) with the shared and the view's stylesheets (media/), a dark
// theme's --vscode-* colours on <html> (as VS Code sets them), and a fake acquireVsCodeApi.
//
// The harness runs inside the page as window.graftBench (page JavaScript kept as text, because
// this project's tsconfig has no DOM types). Its base, shared by every view:
//   ready            resolves when the webview posts {type: 'ready'} (its listener is attached)
//   hostMessages     what the webview posted to the host
//   state            what it saved with setState (getState returns it)
//   texts            host messages as JSON text, set from Node with setMessageTexts
//   receive(texts)   parses them (how a message crosses the process boundary) and posts each one
//                    with window.postMessage, one message event per message as VS Code delivers
//                    them; returns the parse time in ms
//   nextFrame()      resolves at the next animation frame
//   painted()        two animation frames later, a frame with the current DOM has been painted
//   mutationUntil(root, options, done)  the time of the first DOM mutation after which done() holds
// A benchmark adds its view's own helpers with the `script` option (run after the base, before
// the bundle).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Page } from 'playwright-core';
import { repoRoot } from '../../test/unit/helpers';

/** VS Code's Dark+ colours for every variable the Graft stylesheets and the webview UI toolkit read. */
export const DARK_THEME: Readonly<Record<string, string>> = {
  '--vscode-font-family': 'system-ui, sans-serif',
  '--vscode-font-size': '13px',
  '--vscode-font-weight': 'normal',
  '--vscode-editor-font-family': 'monospace',
  '--vscode-editor-font-size': '12px',
  '--vscode-foreground': '#cccccc',
  '--vscode-descriptionForeground': '#9d9d9d',
  '--vscode-disabledForeground': '#cccccc80',
  '--vscode-errorForeground': '#f48771',
  '--vscode-editor-background': '#1e1e1e',
  '--vscode-panel-background': '#1e1e1e',
  '--vscode-panel-border': '#80808059',
  '--vscode-focusBorder': '#007fd4',
  '--vscode-contrastBorder': '',
  '--vscode-contrastActiveBorder': '',
  '--vscode-textLink-foreground': '#3794ff',
  '--vscode-textLink-activeForeground': '#3794ff',
  '--vscode-textBlockQuote-background': '#7f7f7f1a',
  '--vscode-list-hoverBackground': '#2a2d2e',
  '--vscode-list-activeSelectionBackground': '#04395e',
  '--vscode-list-activeSelectionForeground': '#ffffff',
  '--vscode-list-focusOutline': '#007fd4',
  '--vscode-sideBarSectionHeader-background': '#252526',
  '--vscode-badge-background': '#4d4d4d',
  '--vscode-badge-foreground': '#ffffff',
  '--vscode-input-background': '#3c3c3c',
  '--vscode-input-foreground': '#cccccc',
  '--vscode-input-placeholderForeground': '#a6a6a6',
  '--vscode-inputValidation-errorBackground': '#5a1d1d',
  '--vscode-inputValidation-errorBorder': '#be1100',
  '--vscode-progressBar-background': '#0e70c0',
  '--vscode-button-background': '#0e639c',
  '--vscode-button-foreground': '#ffffff',
  '--vscode-button-hoverBackground': '#1177bb',
  '--vscode-button-border': '',
  '--vscode-button-secondaryBackground': '#3a3d41',
  '--vscode-button-secondaryForeground': '#cccccc',
  '--vscode-button-secondaryHoverBackground': '#45494e',
  '--vscode-checkbox-background': '#3c3c3c',
  '--vscode-checkbox-border': '#6b6b6b',
  '--vscode-checkbox-foreground': '#f0f0f0',
  '--vscode-dropdown-background': '#3c3c3c',
  '--vscode-dropdown-border': '#3c3c3c',
  '--vscode-dropdown-foreground': '#f0f0f0',
  '--vscode-settings-dropdownListBorder': '#454545',
  '--vscode-scrollbarSlider-background': '#79797966',
  '--vscode-scrollbarSlider-hoverBackground': '#646464b3',
  '--vscode-scrollbarSlider-activeBackground': '#bfbfbf66',
  '--vscode-panelTitle-activeBorder': '#e7e7e7',
  '--vscode-panelTitle-activeForeground': '#e7e7e7',
  '--vscode-panelTitle-inactiveForeground': '#e7e7e799',
  '--vscode-editorWidget-background': '#252526',
  '--vscode-editorWidget-foreground': '#cccccc',
  '--vscode-editorWidget-border': '#454545',
  '--vscode-editorHoverWidget-background': '#252526',
  '--vscode-editorHoverWidget-foreground': '#cccccc',
  '--vscode-editorHoverWidget-border': '#454545',
  '--vscode-editorIndentGuide-activeBackground1': '#707070',
  '--vscode-editorOverviewRuler-findMatchForeground': '#d186167e',
  '--vscode-statusBarItem-warningBackground': '#7a6400',
  '--vscode-statusBarItem-warningForeground': '#ffffff',
  '--vscode-charts-foreground': '#cccccc',
  '--vscode-charts-red': '#f14c4c',
  '--vscode-charts-blue': '#3794ff',
  '--vscode-charts-yellow': '#cca700',
  '--vscode-charts-orange': '#d18616',
  '--vscode-charts-green': '#89d185',
  '--vscode-charts-purple': '#b180d7',
};

const BASE_HARNESS = `
(() => {
  const bench = { state: undefined, texts: [], hostMessages: [] };
  bench.ready = new Promise((resolve) => { bench.resolveReady = resolve; });
  window.acquireVsCodeApi = () => ({
    postMessage(message) {
      bench.hostMessages.push(message);
      if (message && message.type === 'ready') bench.resolveReady(performance.now());
    },
    getState() { return bench.state; },
    setState(state) { bench.state = state; },
  });
  bench.receive = (texts) => {
    const started = performance.now();
    const messages = texts.map((text) => JSON.parse(text));
    const parseMs = performance.now() - started;
    for (const message of messages) window.postMessage(message, '*');
    return parseMs;
  };
  bench.nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  bench.painted = async () => { await bench.nextFrame(); await bench.nextFrame(); return performance.now(); };
  bench.mutationUntil = (root, options, done) => new Promise((resolve) => {
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(performance.now()); } });
    observer.observe(root, options);
  });
  window.graftBench = bench;
})();
`;

/** dist/webview/<name>.js, or an error saying how to build it. */
export function webviewBundle(name: string): string {
  const bundle = path.join(repoRoot, 'dist', 'webview', `${name}.js`);
  if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run \`node scripts/build.mjs\` first.`);
  return bundle;
}

export interface WebviewPageOptions {
  /** The document title. */
  title: string;
  /** Page JavaScript run after the base harness and before the bundle: the view's own helpers on window.graftBench. */
  script?: string;
  theme?: Readonly<Record<string, string>>;
}

/**
 * Writes the page for webview `name` (its bundle and stylesheets copied next to it) into `dir`
 * and returns its file URL.
 */
export function writeWebviewPage(dir: string, name: string, options: WebviewPageOptions): string {
  fs.copyFileSync(webviewBundle(name), path.join(dir, `${name}.js`));
  const stylesheets = ['webview.css', `${name}.css`];
  for (const css of stylesheets) fs.copyFileSync(path.join(repoRoot, 'media', css), path.join(dir, css));
  const theme = Object.entries(options.theme ?? DARK_THEME)
    .filter(([, value]) => value !== '')
    .map(([key, value]) => `${key}: ${value};`)
    .join(' ');
  const html = `<!DOCTYPE html>
<html lang="en" style="${theme}">
<head>
<meta charset="UTF-8">
${stylesheets.map((css) => `<link rel="stylesheet" href="${css}">`).join('\n')}
<title>${options.title}</title>
<script>${BASE_HARNESS}</script>
${options.script ? `<script>${options.script}</script>` : ''}
</head>
<body data-view="${name}" class="vscode-dark">
<div id="app" role="main"></div>
<script src="${name}.js"></script>
</body>
</html>`;
  const file = path.join(dir, `${name}.html`);
  fs.writeFileSync(file, html);
  return pathToFileURL(file).href;
}

/** (Re)loads the page and waits until the webview has posted 'ready', as the host does before posting. */
export async function loadWebview(page: Page, url: string): Promise<void> {
  await page.goto(url);
  await page.evaluate('window.graftBench.ready');
}

/** Hands the host's messages, as JSON text, to the page (window.graftBench.texts). */
export async function setMessageTexts(page: Page, texts: readonly string[]): Promise<void> {
  await page.evaluate((list: readonly string[]) => {
    (globalThis as unknown as { graftBench: { texts: readonly string[] } }).graftBench.texts = list;
  }, texts);
}

/** Collects uncaught page errors and console errors; a benchmark fails if any turned up. */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  return errors;
}

/** test-results/<file> (the folder created), where benchmark screenshots go. */
export function resultFile(file: string): string {
  const dir = path.join(repoRoot, 'test-results');
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, file);
}
