// Standalone SVG and PNG of what the view shows. Theme colours are CSS variables that mean nothing
// outside VS Code, so every element's computed paint and font is written onto the copy first.

const INLINED = ['fill', 'stroke', 'stroke-width', 'stroke-dasharray', 'opacity', 'font-family', 'font-size', 'font-weight', 'text-anchor', 'dominant-baseline'] as const;
const SVG_NS = 'http://www.w3.org/2000/svg';
const GAP = 24;

export interface SerializedSvg {
  text: string;
  width: number;
  height: number;
}

/** One SVG document with the given charts side by side on the editor background. */
export function serializeSvgs(svgs: SVGSVGElement[], background: string): SerializedSvg {
  const sizes = svgs.map((svg) => ({ width: Number(svg.getAttribute('width')) || svg.clientWidth, height: Number(svg.getAttribute('height')) || svg.clientHeight }));
  const width = sizes.reduce((sum, s) => sum + s.width, 0) + GAP * Math.max(0, svgs.length - 1);
  const height = Math.max(0, ...sizes.map((s) => s.height));
  const root = document.createElementNS(SVG_NS, 'svg');
  root.setAttribute('xmlns', SVG_NS);
  root.setAttribute('width', String(width));
  root.setAttribute('height', String(height));
  root.setAttribute('viewBox', `0 0 ${width} ${height}`);
  const backdrop = document.createElementNS(SVG_NS, 'rect');
  backdrop.setAttribute('width', '100%');
  backdrop.setAttribute('height', '100%');
  backdrop.setAttribute('fill', background);
  root.append(backdrop);
  let x = 0;
  svgs.forEach((svg, i) => {
    const copy = inlineStyles(svg);
    copy.setAttribute('x', String(x));
    copy.setAttribute('y', '0');
    root.append(copy);
    x += sizes[i].width + GAP;
  });
  return { text: new XMLSerializer().serializeToString(root), width, height };
}

function inlineStyles(svg: SVGSVGElement): SVGSVGElement {
  const copy = svg.cloneNode(true) as SVGSVGElement;
  const originals = [svg, ...svg.querySelectorAll('*')];
  const copies = [copy, ...copy.querySelectorAll('*')];
  originals.forEach((original, i) => {
    const target = copies[i];
    const computed = getComputedStyle(original);
    for (const property of INLINED) {
      const value = computed.getPropertyValue(property);
      if (value && value !== 'normal' && value !== 'auto') target.setAttribute(property, value);
    }
    target.removeAttribute('class');
    target.removeAttribute('tabindex');
  });
  return copy;
}

/** Renders the SVG on a canvas at `scale` x and returns the PNG as base64 (no data: prefix). */
export async function svgToPngBase64(svg: SerializedSvg, scale = 2): Promise<string> {
  const image = new Image();
  const loaded = new Promise<void>((resolve, reject) => {
    image.onload = () => resolve();
    image.onerror = () => reject(new Error('The chart could not be rendered as an image.'));
  });
  image.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg.text)}`;
  await loaded;
  const canvas = document.createElement('canvas');
  canvas.width = Math.ceil(svg.width * scale);
  canvas.height = Math.ceil(svg.height * scale);
  const context = canvas.getContext('2d');
  if (!context) throw new Error('This webview cannot draw on a canvas, so PNG export is unavailable; export SVG instead.');
  context.scale(scale, scale);
  context.drawImage(image, 0, 0, svg.width, svg.height);
  return canvas.toDataURL('image/png').slice('data:image/png;base64,'.length);
}
