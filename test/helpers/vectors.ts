import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Captures from real nginx and uWSGI's router (copied into the repository; see its README). */
export const VECTORS = join(import.meta.dirname, '../fixtures/uwsgi-vectors');

/** A capture's `.json`: the vars in wire order (non-UTF-8 values as `hex:…`) and the body. */
export interface CaptureJson {
  file: string;
  modifier1: number;
  modifier2: number;
  datasize: number;
  vars: Array<[string, string]>;
  body: {
    length: number;
    sha256: string;
    framing: string;
    decoded_length: number;
    decoded_sha256: string;
  };
}

export interface Capture {
  name: string;
  /** The exact bytes the backend read on one connection: packet, then body. */
  bin: Buffer;
  json: CaptureJson;
}

/** Every capture of requests (nginx, uWSGI's router with and without chunked input). */
export function captures(): Capture[] {
  const out: Capture[] = [];
  for (const dir of ['nginx', 'uwsgi-router', 'uwsgi-router-opts']) {
    for (const file of readdirSync(join(VECTORS, dir)).filter((f) => f.endsWith('.json'))) {
      const json = JSON.parse(readFileSync(join(VECTORS, dir, file), 'utf8')) as CaptureJson;
      out.push({
        name: file.replace(/\.json$/, ''),
        bin: readFileSync(join(VECTORS, json.file)),
        json,
      });
    }
  }
  if (out.length === 0) throw new Error(`no captures found in ${VECTORS}`);
  return out;
}

/** A captured value as the server must decode it: `hex:…` is UTF-8 when valid, else Latin-1. */
export function decodeCaptured(value: string): string {
  if (!value.startsWith('hex:')) return value;
  const bytes = Buffer.from(value.slice(4), 'hex');
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return bytes.toString('latin1');
  }
}
