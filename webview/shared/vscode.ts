// The webview side of a Graft channel: a typed postMessage, a typed message listener, persisted
// state, and the "ready" handshake the host waits for before sending its first message.

interface VsCodeApi<S> {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): void;
}

declare function acquireVsCodeApi<S>(): VsCodeApi<S>;

export interface Channel<ToHost, ToWebview, State> {
  post(message: ToHost): void;
  onMessage(handler: (message: ToWebview) => void): void;
  getState(): State | undefined;
  setState(state: State): void;
}

/** Create once per webview; sends {type: 'ready'} after the listener is attached. */
export function connect<ToHost extends { type: string }, ToWebview, State = unknown>(): Channel<ToHost, ToWebview, State> {
  const api = acquireVsCodeApi<State>();
  const handlers: ((message: ToWebview) => void)[] = [];
  window.addEventListener('message', (event: MessageEvent<ToWebview>) => {
    for (const handler of handlers) handler(event.data);
  });
  queueMicrotask(() => api.postMessage({ type: 'ready' }));
  return {
    post: (message) => api.postMessage(message),
    onMessage: (handler) => handlers.push(handler),
    getState: () => api.getState(),
    setState: (state) => api.setState(state),
  };
}
