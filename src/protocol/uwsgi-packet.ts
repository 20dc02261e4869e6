import { NgiError } from '../core/errors.js';

/** uWSGI's default `--buffer-size`: the largest vars block accepted. */
export const DEFAULT_BUFFER_SIZE = 4096;
/** The vars block length is a u16. */
export const MAX_BUFFER_SIZE = 65535;
const HEADER_SIZE = 4;
/** The `rest` of a packet that came alone (a GET): no view made for nothing. */
const NO_BYTES = Buffer.alloc(0);

/** One decoded uwsgi packet: the header's modifiers and the vars, in wire order, duplicates kept. */
export interface UwsgiPacket {
  modifier1: number;
  modifier2: number;
  vars: Array<[key: string, value: string]>;
  /** Bytes the packet took on the wire (4-byte header + vars block). */
  size: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A value holding bytes over 0x7f: UTF-8 when valid (nginx passes raw header bytes), else Latin-1. */
function decodeHighValue(bytes: Buffer, start: number, end: number, latin1: string): string {
  try {
    return utf8.decode(bytes.subarray(start, end));
  } catch {
    return latin1;
  }
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

/** A byte over 0x7f, in a block read as Latin-1 (one char per byte). */
const HIGH_BYTE = /[\x80-\xff]/;

/**
 * Var names seen before, by a hash of their bytes. nginx sends the same 20 to 40 names with
 * every request; handing back the one string kept for each (internalized when first stored)
 * spares V8 a string-table lookup every time a fresh slice is used as an environ key (about a
 * third of the cost of decoding and building the environ of a fresh packet). Bounded: names a
 * peer makes up (`HTTP_X_*`) stop being kept once it is full.
 */
const knownNames = new Map<number, string>();
const MAX_KNOWN_NAMES = 1024;

function nameAt(bytes: Buffer, at: number, size: number, text: string, offset: number): string {
  // Length, last, middle and fifth byte: names that share a prefix (`HTTP_`) and a length
  // still differ here; a name that does not is only not kept (the check below is exact).
  const last = at + size - 1;
  const hash =
    ((size & 0x3f) << 24) |
    (bytes[last]! << 16) |
    (bytes[at + (size >> 1)]! << 8) |
    bytes[at + (size > 5 ? 5 : 0)]!;
  const known = knownNames.get(hash);
  if (known !== undefined && known.length === size) {
    let i = size - 1;
    while (i >= 0 && known.charCodeAt(i) === bytes[at + i]) i--;
    if (i < 0) return known;
  }
  const name = text.slice(offset, offset + size);
  if (known === undefined && knownNames.size < MAX_KNOWN_NAMES) {
    // The key of an object literal is internalized: what is kept is that string.
    knownNames.set(hash, Object.keys({ [name]: 0 })[0]!);
  }
  return name;
}

function readVars(bytes: Buffer, start: number, end: number): Array<[string, string]> {
  const vars: Array<[string, string]> = [];
  // The block as one Latin-1 string, one call into C++ rather than two per var (a packet from
  // nginx holds 20 to 40); keys and values are slices of it, as a char is a byte. Only a
  // value with bytes over 0x7f is decoded again, on its own.
  const text = bytes.toString('latin1', start, end);
  const ascii = !HIGH_BYTE.test(text);
  let at = start;
  while (at < end) {
    if (at + 2 > end) throw bad(`key length at offset ${at - start} runs past the vars block`);
    const keySize = bytes[at]! | (bytes[at + 1]! << 8);
    at += 2;
    if (at + keySize + 2 > end)
      throw bad(`key of ${keySize} bytes at offset ${at - 2 - start} runs past the vars block`);
    const key = nameAt(bytes, at, keySize, text, at - start);
    at += keySize;
    const valueSize = bytes[at]! | (bytes[at + 1]! << 8);
    at += 2;
    if (at + valueSize > end) {
      throw bad(`value of ${valueSize} bytes for ${JSON.stringify(key)} runs past the vars block`);
    }
    if (keySize === 0) throw bad(`empty key at offset ${at - 4 - start}`);
    let value = text.slice(at - start, at - start + valueSize);
    if (!ascii && HIGH_BYTE.test(value)) value = decodeHighValue(bytes, at, at + valueSize, value);
    vars.push([key, value]);
    at += valueSize;
  }
  return vars;
}

/**
 * Decodes one complete uwsgi packet from the start of `bytes` (what follows it is the body).
 * Throws `NGI_ERR_BAD_PACKET` for a truncated or malformed packet, or one over `bufferSize`
 * (default 4096 as in the listener; pass `MAX_BUFFER_SIZE` to take any packet).
 *
 * @example
 * const { vars } = parseUwsgiPacket(bytes);
 * // [['REQUEST_METHOD', 'GET'], ['PATH_INFO', '/'], ...]
 */
export function parseUwsgiPacket(
  bytes: Uint8Array,
  bufferSize: number = DEFAULT_BUFFER_SIZE,
): UwsgiPacket {
  const buffer = Buffer.isBuffer(bytes)
    ? bytes
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < HEADER_SIZE) throw bad(`truncated header: ${buffer.length} of 4 bytes`);
  const datasize = readHeader(buffer, bufferSize);
  const size = HEADER_SIZE + datasize;
  if (buffer.length < size)
    throw bad(`truncated vars block: ${buffer.length - HEADER_SIZE} of ${datasize} bytes`);
  return decode(buffer, size);
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
  let size = 0;
  for (const [key, value] of vars) {
    const keySize = Buffer.byteLength(key, 'latin1');
    const valueSize = Buffer.byteLength(value, 'utf8');
    if (keySize > 0xffff || valueSize > 0xffff)
      throw new RangeError(`var ${key} is too long for uwsgi`);
    size += 4 + keySize + valueSize;
  }
  if (size > MAX_BUFFER_SIZE)
    throw new RangeError(`vars block of ${size} bytes exceeds ${MAX_BUFFER_SIZE}`);
  // One allocation: the sizes are known, so every var is written in place.
  const packet = Buffer.allocUnsafe(HEADER_SIZE + size);
  packet[0] = modifier1;
  packet.writeUInt16LE(size, 1);
  packet[3] = modifier2;
  let at = HEADER_SIZE;
  for (const [key, value] of vars) {
    const keySize = packet.write(key, at + 2, 'latin1');
    packet.writeUInt16LE(keySize, at);
    at += 2 + keySize;
    const valueSize = packet.write(value, at + 2, 'utf8');
    packet.writeUInt16LE(valueSize, at);
    at += 2 + valueSize;
  }
  return packet;
}

/**
 * Reassembles a packet from bytes that arrive in any split (a byte at a time included).
 * The size check happens as soon as the header is in, so an oversized packet is refused
 * before its block is buffered. Each byte is copied at most once: a packet that arrives
 * whole is decoded in place, a split one is gathered in one buffer of its exact size.
 *
 * @example
 * const parser = new UwsgiPacketParser(8192);
 * socket.on('data', (bytes) => {
 *   const done = parser.push(bytes); // throws NGI_ERR_BAD_PACKET
 *   if (done) handle(done.packet, done.rest); // `rest`: the start of the body
 * });
 */
export class UwsgiPacketParser {
  private readonly bufferSize: number;
  /** The header while it arrives piecewise. */
  private header: Buffer | undefined = undefined;
  private headerFill = 0;
  /** Header + vars block, once the header said how big it is. */
  private block: Buffer | undefined = undefined;
  private blockFill = 0;

  constructor(bufferSize: number = DEFAULT_BUFFER_SIZE) {
    this.bufferSize = bufferSize;
  }

  /** Bytes held while the packet is incomplete. */
  get buffered(): number {
    return this.block === undefined ? this.headerFill : this.blockFill;
  }

  /**
   * Adds bytes. Returns the packet and the bytes after it (the start of the body) once the
   * packet is complete, `undefined` while more are needed; throws `NGI_ERR_BAD_PACKET`.
   */
  push(chunk: Buffer): { packet: UwsgiPacket; rest: Buffer } | undefined {
    let at = 0;
    if (this.block === undefined) {
      if (this.headerFill === 0 && chunk.length >= HEADER_SIZE) {
        const size = HEADER_SIZE + readHeader(chunk, this.bufferSize);
        // The common case, the whole packet in one read: decoded where it lies.
        if (chunk.length >= size) {
          const rest = chunk.length === size ? NO_BYTES : chunk.subarray(size);
          return { packet: decode(chunk, size), rest };
        }
        this.block = Buffer.allocUnsafe(size);
        this.blockFill = chunk.copy(this.block);
        return undefined;
      }
      const header = (this.header ??= Buffer.allocUnsafe(HEADER_SIZE));
      at = chunk.copy(header, this.headerFill, 0, HEADER_SIZE - this.headerFill);
      this.headerFill += at;
      if (this.headerFill < HEADER_SIZE) return undefined;
      this.block = Buffer.allocUnsafe(HEADER_SIZE + readHeader(header, this.bufferSize));
      this.blockFill = header.copy(this.block);
    }
    const block = this.block;
    const copied = chunk.copy(block, this.blockFill, at);
    this.blockFill += copied;
    if (this.blockFill < block.length) return undefined;
    this.block = undefined;
    this.blockFill = 0;
    this.headerFill = 0;
    return { packet: decode(block, block.length), rest: chunk.subarray(at + copied) };
  }
}

function decode(bytes: Buffer, size: number): UwsgiPacket {
  return {
    modifier1: bytes[0]!,
    modifier2: bytes[3]!,
    vars: readVars(bytes, HEADER_SIZE, size),
    size,
  };
}
