// A tiny element builder for webviews: properties, data attributes and children in one call.

type Props = Partial<Record<string, unknown>> & { dataset?: Record<string, string> };

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props, children?: (Node | string | null | undefined)[]): HTMLElementTagNameMap[K];
export function el(tag: string, props?: Props, children?: (Node | string | null | undefined)[]): HTMLElement;
export function el(tag: string, props: Props = {}, children: (Node | string | null | undefined)[] = []): HTMLElement {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key === 'ariaLabel' || key === 'ariaLive') element.setAttribute(key === 'ariaLabel' ? 'aria-label' : 'aria-live', String(value));
    else if (key in element) (element as unknown as Record<string, unknown>)[key] = value;
    else element.setAttribute(key, String(value));
  }
  for (const child of children) if (child !== null && child !== undefined) element.append(child);
  return element;
}
