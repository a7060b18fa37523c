// The Graft log channel. Messages quote file names, tensor names and card fields; a crafted one
// could forge log lines or carry escape codes, so every string written is escaped (core/text.ts).
// A message's own line breaks (a stack trace) are kept; each line is escaped on its own.
import * as vscode from 'vscode';
import { escapeControl } from '../core/text';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'appendLine', 'append'] as const;

function escapeLines(text: string): string {
  return text.split('\n').map(escapeControl).join('\n');
}

/** A log output channel whose messages and string arguments are escaped before they are written. */
export function createSafeLog(name: string): vscode.LogOutputChannel {
  const channel = vscode.window.createOutputChannel(name, { log: true });
  const escaped = (value: unknown) => (typeof value === 'string' ? escapeLines(value) : value);
  return new Proxy(channel, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (!(LEVELS as readonly (string | symbol)[]).includes(property)) return method;
      return (...args: unknown[]) => method(...args.map(escaped));
    },
  });
}
