// Human-readable numbers shared by the CLI, the extension and the webviews (no Node APIs here).

function scaled(value: number, units: readonly string[], base: number, separator: string): string {
  const sign = value < 0 ? '-' : '';
  let magnitude = Math.abs(value);
  if (!Number.isFinite(magnitude)) return String(value);
  if (magnitude < base) return `${sign}${Math.round(magnitude)}${units[0] ? separator + units[0] : ''}`;
  let unit = 0;
  while (magnitude >= base && unit < units.length - 1) {
    magnitude /= base;
    unit++;
  }
  // One decimal below 100 ("1.2M", "12.5 GB"), none above ("124M"); rounding may carry to 1000.
  let text = magnitude < 99.95 ? magnitude.toFixed(1) : magnitude.toFixed(0);
  if (text === '1000' && unit < units.length - 1) {
    unit++;
    text = '1.0';
  }
  if (text.endsWith('.0')) text = text.slice(0, -2);
  return `${sign}${text}${separator}${units[unit]}`;
}

/** Parameter counts the way model cards write them: 950, 1.2K, 124M, 7B, 1.1T. */
export function formatParameters(count: number): string {
  return scaled(count, ['', 'K', 'M', 'B', 'T'], 1000, '');
}

/** Byte sizes in decimal units, as file browsers and model hubs show them: 512 B, 2.4 MB, 15 GB. */
export function formatBytes(bytes: number): string {
  return scaled(bytes, ['B', 'kB', 'MB', 'GB', 'TB', 'PB'], 1000, ' ');
}

/** A tensor shape as `[17, 33]`; a scalar as `[]`. Bigint dimensions print exactly. */
export function formatShape(shape: readonly (number | bigint)[]): string {
  return `[${shape.join(', ')}]`;
}

/** An integer with thousands separators: 1,234,567. */
export function formatCount(count: number): string {
  return Math.round(count).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

const BYTE_UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** "5GB", "500 MB", "2GiB" or a number of bytes; undefined when it is not a positive size. */
export function parseByteSize(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? BYTE_UNITS[(m[2] || 'b').toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) return undefined;
  return Math.floor(Number(m[1]) * unit);
}

/** `x` with `digits` decimals, never "-0.00" for a value that rounds to zero. */
export function fixedNoNegativeZero(x: number, digits: number): string {
  const text = x.toFixed(digits);
  return Number(text) === 0 ? (0).toFixed(digits) : text;
}
