// A fixed-row-height virtual list: only the rows in view (plus a margin) exist in the DOM, so a
// checkpoint with 100,000 tensors scrolls as smoothly as one with ten.

export interface VirtualListHandlers<T> {
  onActivate(item: T): void;
  onScroll?(scrollTop: number): void;
}

const OVERSCAN = 8;

export class VirtualList<T> {
  private items: T[] = [];
  private readonly spacer: HTMLElement;
  private readonly layer: HTMLElement;
  private readonly pool: HTMLElement[] = [];
  private focusIndex = -1;
  private frame = 0;

  constructor(
    private readonly viewport: HTMLElement,
    private readonly rowHeight: number,
    private readonly render: (item: T, element: HTMLElement) => void,
    private readonly handlers: VirtualListHandlers<T>,
  ) {
    this.spacer = document.createElement('div');
    this.spacer.className = 'spacer-block';
    this.layer = document.createElement('div');
    this.layer.className = 'rows';
    this.spacer.append(this.layer);
    viewport.replaceChildren(this.spacer);
    viewport.addEventListener('scroll', () => {
      this.schedule();
      handlers.onScroll?.(viewport.scrollTop);
    });
    viewport.addEventListener('click', (event) => {
      const index = this.indexOf(event.target);
      if (index >= 0) this.activate(index);
    });
    viewport.addEventListener('keydown', (event) => this.onKey(event));
    new ResizeObserver(() => this.schedule()).observe(viewport);
  }

  setItems(items: T[], isFocused?: (item: T) => boolean): void {
    this.items = items;
    this.spacer.style.height = `${items.length * this.rowHeight}px`;
    if (isFocused) this.focusIndex = items.findIndex(isFocused);
    this.draw();
  }

  /** Re-render visible rows (e.g. after the selection changed). */
  refresh(isFocused?: (item: T) => boolean): void {
    if (isFocused) this.focusIndex = this.items.findIndex(isFocused);
    this.draw();
  }

  scrollTo(top: number): void {
    this.viewport.scrollTop = top;
    this.draw();
  }

  private schedule(): void {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.draw();
    });
  }

  private draw(): void {
    const height = this.viewport.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.viewport.scrollTop / this.rowHeight) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((this.viewport.scrollTop + height) / this.rowHeight) + OVERSCAN);
    const count = Math.max(0, last - first);
    while (this.pool.length < count) {
      const row = document.createElement('div');
      this.pool.push(row);
      this.layer.append(row);
    }
    this.layer.style.transform = `translateY(${first * this.rowHeight}px)`;
    for (let i = 0; i < this.pool.length; i++) {
      const row = this.pool[i];
      if (i >= count) {
        row.hidden = true;
        continue;
      }
      row.hidden = false;
      const index = first + i;
      row.dataset.index = String(index);
      this.render(this.items[index], row);
      row.classList.toggle('focused', index === this.focusIndex);
    }
  }

  private indexOf(target: EventTarget | null): number {
    const row = (target as HTMLElement | null)?.closest<HTMLElement>('[data-index]');
    return row ? Number(row.dataset.index) : -1;
  }

  private activate(index: number): void {
    this.focusIndex = index;
    this.handlers.onActivate(this.items[index]);
  }

  private onKey(event: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / this.rowHeight) - 1);
    const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    if (event.key in moves) {
      event.preventDefault();
      this.focusIndex = Math.max(0, Math.min(this.items.length - 1, this.focusIndex + moves[event.key]));
      this.ensureVisible(this.focusIndex);
      this.draw();
    } else if ((event.key === 'Enter' || event.key === ' ') && this.focusIndex >= 0) {
      event.preventDefault();
      this.activate(this.focusIndex);
    }
  }

  private ensureVisible(index: number): void {
    const top = index * this.rowHeight;
    if (top < this.viewport.scrollTop) this.viewport.scrollTop = top;
    else if (top + this.rowHeight > this.viewport.scrollTop + this.viewport.clientHeight) this.viewport.scrollTop = top + this.rowHeight - this.viewport.clientHeight;
  }
}
