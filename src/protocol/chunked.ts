import { RequestError } from '../core/errors.js';

const enum State {
  Size,
  SizeLineEnd,
  Data,
  DataEnd,
  Trailer,
  Done,
}

/**
 * Decodes an HTTP/1.1 chunked body as its bytes arrive in any split: what uWSGI's router
 * forwards with `--http-chunked-input` (raw chunk framing, no `CONTENT_LENGTH`).
 */
export class ChunkedDecoder {
  private state = State.Size;
  private size = 0;
  private digits = 0;
  private lineLength = 0;

  get done(): boolean {
    return this.state === State.Done;
  }

  /** Feeds bytes; calls `onData` with each piece of payload. Throws a `RequestError` (400). */
  feed(chunk: Buffer, onData: (data: Buffer) => void): void {
    let i = 0;
    while (i < chunk.length && this.state !== State.Done) {
      switch (this.state) {
        case State.Size: {
          const c = chunk[i++]!;
          const hex =
            c >= 48 && c <= 57 ? c - 48 : (c | 32) >= 97 && (c | 32) <= 102 ? (c | 32) - 87 : -1;
          if (hex >= 0 && this.size !== -1) {
            if (++this.digits > 12) throw new RequestError('chunk size too large');
            this.size = this.size * 16 + hex;
          } else if (c === 13 || c === 10 || c === 59 /* ; */) {
            if (this.digits === 0) throw new RequestError('chunk size missing');
            this.state = c === 10 ? this.afterSizeLine() : State.SizeLineEnd;
          } else {
            throw new RequestError('malformed chunk size');
          }
          break;
        }
        case State.SizeLineEnd:
          // chunk extensions and the CR: skipped up to LF
          if (chunk[i++] === 10) this.state = this.afterSizeLine();
          break;
        case State.Data: {
          const take = Math.min(this.size, chunk.length - i);
          onData(chunk.subarray(i, i + take));
          i += take;
          this.size -= take;
          if (this.size === 0) this.state = State.DataEnd;
          break;
        }
        case State.DataEnd: {
          const c = chunk[i++];
          if (c === 10) this.reset(State.Size);
          else if (c !== 13) throw new RequestError('missing CRLF after chunk data');
          break;
        }
        case State.Trailer: {
          const c = chunk[i++];
          if (c === 10) {
            if (this.lineLength === 0) this.state = State.Done;
            this.lineLength = 0;
          } else if (c !== 13) {
            this.lineLength++;
          }
          break;
        }
      }
    }
  }

  private afterSizeLine(): State {
    if (this.size === 0) return State.Trailer;
    return State.Data;
  }

  private reset(state: State): void {
    this.state = state;
    this.size = 0;
    this.digits = 0;
  }
}
