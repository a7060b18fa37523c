// Serialises the drawing as a standalone SVG: the whole graph (not just the visible part), with
// the theme's computed colours and fonts written as presentation attributes, because the
// --vscode-* variables and the stylesheet do not travel with the file.

/** Inherited properties are written only where they differ from the parent's. */
const inheritedProperties = [
  'fill', 'fill-opacity', 'stroke', 'stroke-width', 'stroke-dasharray', 'stroke-opacity',
  'font-family', 'font-size', 'font-weight', 'marker-end', 'visibility',
] as const;

export function serializeSvg(live: SVGSVGElement, bounds: { width: number; height: number; padding: number }, background: string): string {
  const copy = live.cloneNode(true) as SVGSVGElement;
  inlineStyles(live, copy);
  const width = Math.ceil(bounds.width + 2 * bounds.padding);
  const height = Math.ceil(bounds.height + 2 * bounds.padding);
  copy.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  copy.setAttribute('viewBox', `${-bounds.padding} ${-bounds.padding} ${width} ${height}`);
  copy.setAttribute('width', String(width));
  copy.setAttribute('height', String(height));
  for (const attribute of ['class', 'tabindex', 'role', 'aria-label', 'style']) copy.removeAttribute(attribute);
  for (const name of Object.keys(copy.dataset)) delete copy.dataset[name];
  copy.querySelector('.viewport')?.removeAttribute('transform');
  // Hit areas are invisible and interactive only.
  copy.querySelector('.edge-hits')?.remove();
  for (const element of copy.querySelectorAll('[tabindex]')) {
    element.removeAttribute('tabindex');
    element.removeAttribute('role');
  }
  const backdrop = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
  backdrop.setAttribute('x', String(-bounds.padding));
  backdrop.setAttribute('y', String(-bounds.padding));
  backdrop.setAttribute('width', String(width));
  backdrop.setAttribute('height', String(height));
  backdrop.setAttribute('fill', background);
  copy.insertBefore(backdrop, copy.querySelector('.viewport'));
  return '<?xml version="1.0" encoding="UTF-8"?>\n' + new XMLSerializer().serializeToString(copy);
}

/** Walks the live tree and its clone in step, copying each element's computed style. */
function inlineStyles(live: Element, copy: Element, inherited?: Map<string, string>): void {
  const style = getComputedStyle(live);
  const own = new Map<string, string>();
  for (const property of inheritedProperties) {
    let value = style.getPropertyValue(property);
    own.set(property, value);
    if (!value || value === inherited?.get(property)) continue;
    if (property === 'marker-end' && value !== 'none') {
      // Computed urls may be absolute (webview origin): keep the fragment only.
      const fragment = /#([^")]+)/.exec(value);
      if (!fragment) continue;
      value = `url(#${fragment[1]})`;
    }
    copy.setAttribute(property, value);
  }
  // Not inherited: write only when not the initial value.
  if (style.opacity !== '1') copy.setAttribute('opacity', style.opacity);
  if (style.display === 'none') copy.setAttribute('display', 'none');
  const liveChildren = live.children;
  const copyChildren = copy.children;
  for (let i = 0; i < liveChildren.length; i++) inlineStyles(liveChildren[i], copyChildren[i], own);
}
