// Kind colours from the VS Code theme. Node fills are a tint of the kind colour over the editor
// background, computed here (not with CSS color-mix) so that the tint keeps the theme's text
// readable (contrast >= 4.5) and so an exported SVG gets plain rgb() values. Recomputed whenever
// VS Code switches theme (it changes the body class and the CSS variables on <html>).
import { color, interpolateRgb, rgb, type RGBColor } from 'd3';
import type { NodeKind } from '../../src/core/lineage/types';
import { KIND_COLOURS, themeColourVariable } from '../../src/shared/kindColours';

export const kinds: readonly NodeKind[] = ['base', 'finetune', 'adapter', 'merge', 'quantized', 'checkpoint', 'patch', 'external'];

const minimumContrast = 4.5;
const tint = 0.2;

/** Sets --lineage-<kind>-stroke / -fill on the document root. */
export function applyPalette(): void {
  const styles = getComputedStyle(document.documentElement);
  const read = (name: string, fallback: string): string => styles.getPropertyValue(name).trim() || fallback;
  const highContrast = document.body.classList.contains('vscode-high-contrast') || document.body.classList.contains('vscode-high-contrast-light');
  const background = opaque(read('--vscode-editor-background', '#1e1e1e'), undefined);
  const foreground = opaque(read('--vscode-foreground', '#cccccc'), background);
  const root = document.documentElement.style;
  for (const kind of kinds) {
    const { themeColour, fallback } = KIND_COLOURS[kind];
    const stroke = opaque(read(themeColourVariable(themeColour), fallback), background);
    let fill = background;
    // External models are not on disk: outline only. High contrast themes: outlines only.
    if (kind !== 'external' && !highContrast) {
      for (let amount = tint; amount > 0; amount -= 0.04) {
        const candidate = color(interpolateRgb(background.formatRgb(), stroke.formatRgb())(amount))!.rgb();
        if (contrast(foreground, candidate) >= minimumContrast) {
          fill = candidate;
          break;
        }
      }
    }
    root.setProperty(`--lineage-${kind}-stroke`, stroke.formatRgb());
    root.setProperty(`--lineage-${kind}-fill`, fill.formatRgb());
  }
}

/** Calls applyPalette now and after every theme switch; returns the observer's disconnect. */
export function watchTheme(): () => void {
  applyPalette();
  let scheduled = false;
  const observer = new MutationObserver(() => {
    if (scheduled) return;
    scheduled = true;
    // Both mutations of one theme switch land before the next frame.
    requestAnimationFrame(() => {
      scheduled = false;
      applyPalette();
    });
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ['class'] });
  observer.observe(document.documentElement, { attributes: true, attributeFilter: ['style'] });
  return () => observer.disconnect();
}

/** A colour with its alpha composited over `under` (theme colours may be translucent). */
function opaque(value: string, under: RGBColor | undefined): RGBColor {
  const parsed = color(value)?.rgb() ?? rgb(128, 128, 128);
  const alpha = under ? parsed.opacity : 1;
  const mix = (top: number, bottom: number): number => Math.round(top * alpha + bottom * (1 - alpha));
  return under ? rgb(mix(parsed.r, under.r), mix(parsed.g, under.g), mix(parsed.b, under.b)) : rgb(parsed.r, parsed.g, parsed.b);
}

/** WCAG contrast ratio. */
export function contrast(a: RGBColor, b: RGBColor): number {
  const luminance = (c: RGBColor): number => {
    const channel = (v: number): number => {
      const s = v / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(c.r) + 0.7152 * channel(c.g) + 0.0722 * channel(c.b);
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}
