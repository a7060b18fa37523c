// One colour per lineage node kind, taken from the theme's chart colours, for the sidebar tree's
// icons and the lineage graph alike: a merge looks the same in both places.
import type { NodeKind } from '../core/lineage/types';

/** A theme colour id (as vscode.ThemeColor takes it) and the value to use if a theme lacks it. */
export interface KindColour {
  themeColour: string;
  fallback: string;
}

export const KIND_COLOURS: Readonly<Record<NodeKind, KindColour>> = {
  base: { themeColour: 'charts.blue', fallback: '#3794ff' },
  finetune: { themeColour: 'charts.green', fallback: '#89d185' },
  adapter: { themeColour: 'charts.orange', fallback: '#d18616' },
  merge: { themeColour: 'charts.purple', fallback: '#b180d7' },
  quantized: { themeColour: 'charts.red', fallback: '#f14c4c' },
  checkpoint: { themeColour: 'charts.yellow', fallback: '#cca700' },
  patch: { themeColour: 'terminal.ansiCyan', fallback: '#29b8db' },
  external: { themeColour: 'descriptionForeground', fallback: '#8b949e' },
};

/** The CSS variable a webview sees for a theme colour id ('charts.blue' -> '--vscode-charts-blue'). */
export function themeColourVariable(themeColour: string): string {
  return `--vscode-${themeColour.replace(/\./g, '-')}`;
}
