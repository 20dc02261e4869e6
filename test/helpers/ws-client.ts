import WebSocket, { type ClientOptions } from 'ws';

/** What a WebSocket client saw: the messages, or the HTTP answer that refused it. */
export interface WsResult {
  messages: string[];
  /** The status of a refused handshake (`unexpected-response`), else undefined. */
  refused?: number;
  /** The refusal's body text. */
  body?: string;
  /** The close code, once closed. */
  code?: number;
}

/**
 * Opens a WebSocket with the real `ws` client, sends each of `send` once the first message
 * arrives, collects `expect` messages and closes. Fails with a name after 20 s. `options` go to
 * the client (`ca` for a wss:// server with a test certificate).
 */
export function wsExchange(
  url: string,
  send: string[] = [],
  expect = 1 + send.length,
  options?: ClientOptions,
): Promise<WsResult> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const result: WsResult = { messages: [] };
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${url}: no exchange in 20 s (${JSON.stringify(result)})`));
    }, 20_000);
    ws.on('message', (data) => {
      result.messages.push(String(data));
      if (result.messages.length === 1) for (const text of send) ws.send(text);
      if (result.messages.length === expect) ws.close(1000);
    });
    ws.on('unexpected-response', (_req, res) => {
      result.refused = res.statusCode;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        result.body = body;
        clearTimeout(timer);
        resolve(result);
      });
    });
    ws.on('error', (error) => {
      if (result.refused !== undefined) return;
      clearTimeout(timer);
      reject(error);
    });
    ws.on('close', (code) => {
      result.code = code;
      clearTimeout(timer);
      resolve(result);
    });
  });
}

/** A WebSocket held open by a test, with every message it received so far. */
export interface HeldWs {
  ws: WebSocket;
  messages: string[];
  /** Resolves with the next message (or the one already waiting past `seen`). */
  message(seen: number): Promise<string>;
  /** Resolves with the close code. */
  closed: Promise<number>;
}

/**
 * Opens a WebSocket and resolves once it is open. Messages are collected from the start: the
 * server's first one may arrive in the same packet as the handshake, before the caller listens.
 */
export function openWs(url: string, options?: ClientOptions): Promise<HeldWs> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const messages: string[] = [];
    const waiters: Array<() => void> = [];
    ws.on('message', (data) => {
      messages.push(String(data));
      for (const wake of waiters.splice(0)) wake();
    });
    const closed = new Promise<number>((done) => ws.once('close', done));
    const message = (seen: number): Promise<string> =>
      new Promise((done) => {
        const check = () => {
          if (messages.length > seen) done(messages[seen]!);
          else waiters.push(check);
        };
        check();
      });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${url}: not open in 20 s`));
    }, 20_000);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({ ws, messages, message, closed });
    });
    ws.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
