import { NgiError } from './errors.js';

/** uWSGI's default `--buffer-size`: the largest vars block accepted. */
export const DEFAULT_BUFFER_SIZE = 4096;
/** The vars block length is a u16. */
export const MAX_BUFFER_SIZE = 65535;
const HEADER_SIZE = 4;

/** One decoded uwsgi packet: the header's modifiers and the vars, in wire order, duplicates kept. */
export interface UwsgiPacket {
  modifier1: number;
  modifier2: number;
  vars: Array<[key: string, value: string]>;
  /** Bytes the packet took on the wire (4-byte header + vars block). */
  size: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeValue(bytes: Buffer, start: number, end: number): string {
  for (let i = start; i < end; i++) {
    if (bytes[i]! > 0x7f) {
      // Not ASCII: UTF-8 when valid (nginx passes raw header bytes), else one char per byte.
      try {
        return utf8.decode(bytes.subarray(start, end));
      } catch {
        return bytes.toString('latin1', start, end);
      }
    }
  }
  return bytes.toString('latin1', start, end);
}

function bad(message: string): NgiError {
  return new NgiError('NGI_ERR_BAD_PACKET', message);
}

/**
 * Reads the 4-byte header: `modifier1:u8, datasize:u16le, modifier2:u8`. Returns the vars
 * block size, or throws for a packet this server does not take.
 */
function readHeader(bytes: Buffer, bufferSize: number): number {
  const modifier1 = bytes[0]!;
  const datasize = bytes.readUInt16LE(1);
  if (modifier1 !== 0)
    throw bad(`modifier1 ${modifier1} is not supported (0 = a request with CGI vars)`);
  if (datasize > bufferSize) {
    throw bad(
      `vars block of ${datasize} bytes is larger than the buffer size (${bufferSize}); raise --buffer-size`,
    );
  }
  return datasize;
}

function readVars(bytes: Buffer, start: number, end: number): Array<[string, string]> {
  const vars: Array<[string, string]> = [];
  let at = start;
  while (at < end) {
    if (at + 2 > end) throw bad(`key length at offset ${at - start} runs past the vars block`);
    const keySize = bytes.readUInt16LE(at);
    at += 2;
    if (at + keySize + 2 > end)
      throw bad(`key of ${keySize} bytes at offset ${at - 2 - start} runs past the vars block`);
    const key = bytes.toString('latin1', at, at + keySize);
    at += keySize;
    const valueSize = bytes.readUInt16LE(at);
    at += 2;
    if (at + valueSize > end) {
      throw bad(`value of ${valueSize} bytes for ${JSON.stringify(key)} runs past the vars block`);
    }
    if (keySize === 0) throw bad(`empty key at offset ${at - 4 - start}`);
    vars.push([key, decodeValue(bytes, at, at + valueSize)]);
    at += valueSize;
  }
  return vars;
}

/**
 * Decodes one complete uwsgi packet from the start of `bytes` (what follows it is the body).
 * Throws `NGI_ERR_BAD_PACKET` for a truncated or malformed packet, or one over `bufferSize`.
 *
 * @example
 * const { vars } = parseUwsgiPacket(bytes);
 * // [['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/'], ...]
 */
export function parseUwsgiPacket(bytes: Uint8Array, bufferSize = MAX_BUFFER_SIZE): UwsgiPacket {
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < HEADER_SIZE) throw bad(`truncated header: ${buffer.length} of 4 bytes`);
  const datasize = readHeader(buffer, bufferSize);
  const size = HEADER_SIZE + datasize;
  if (buffer.length < size)
    throw bad(`truncated vars block: ${buffer.length - HEADER_SIZE} of ${datasize} bytes`);
  return {
    modifier1: buffer[0]!,
    modifier2: buffer[3]!,
    vars: readVars(buffer, HEADER_SIZE, size),
    size,
  };
}

/**
 * Encodes vars as a uwsgi packet (what nginx's `uwsgi_pass` sends before the body).
 *
 * @example
 * socket.write(encodeUwsgiPacket([['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/']]));
 */
export function encodeUwsgiPacket(
  vars: ReadonlyArray<readonly [string, string]>,
  modifier1 = 0,
  modifier2 = 0,
): Buffer {
  const parts: Buffer[] = [];
  let size = 0;
  for (const [key, value] of vars) {
    const k = Buffer.from(key, 'latin1');
    const v = Buffer.from(value, 'utf8');
    if (k.length > 0xffff || v.length > 0xffff)
      throw new RangeError(`var ${key} is too long for uwsgi`);
    const lengths = Buffer.allocUnsafe(2);
    lengths.writeUInt16LE(k.length);
    const valueLength = Buffer.allocUnsafe(2);
    valueLength.writeUInt16LE(v.length);
    parts.push(lengths, k, valueLength, v);
    size += 4 + k.length + v.length;
  }
  if (size > MAX_BUFFER_SIZE)
    throw new RangeError(`vars block of ${size} bytes exceeds ${MAX_BUFFER_SIZE}`);
  const header = Buffer.allocUnsafe(HEADER_SIZE);
  header[0] = modifier1;
  header.writeUInt16LE(size, 1);
  header[3] = modifier2;
  return Buffer.concat([header, ...parts], HEADER_SIZE + size);
}

/**
 * Reassembles a packet from bytes that arrive in any split (a byte at a time included).
 * The size check happens as soon as the header is in, so an oversized packet is refused
 * before its block is buffered.
 */
export class UwsgiPacketParser {
  private readonly bufferSize: number;
  private pending: Buffer | undefined = undefined;
  private needed = HEADER_SIZE;

  constructor(bufferSize = DEFAULT_BUFFER_SIZE) {
    this.bufferSize = bufferSize;
  }

  /** Bytes held while the packet is incomplete. */
  get buffered(): number {
    return this.pending?.length ?? 0;
  }

  /**
   * Adds bytes. Returns the packet and the bytes after it (the start of the body) once the
   * packet is complete, `undefined` while more are needed; throws `NGI_ERR_BAD_PACKET`.
   */
  push(chunk: Buffer): { packet: UwsgiPacket; rest: Buffer } | undefined {
    // The common case, the whole packet in one read, concatenates nothing.
    const bytes = this.pending === undefined ? chunk : Buffer.concat([this.pending, chunk]);
    if (bytes.length < this.needed) {
      this.pending = bytes;
      return undefined;
    }
    if (this.needed === HEADER_SIZE) {
      this.needed = HEADER_SIZE + readHeader(bytes, this.bufferSize);
      if (bytes.length < this.needed) {
        this.pending = bytes;
        return undefined;
      }
    }
    const size = this.needed;
    const packet: UwsgiPacket = {
      modifier1: bytes[0]!,
      modifier2: bytes[3]!,
      vars: readVars(bytes, HEADER_SIZE, size),
      size,
    };
    this.pending = undefined;
    this.needed = HEADER_SIZE;
    return { packet, rest: bytes.subarray(size) };
  }
}
