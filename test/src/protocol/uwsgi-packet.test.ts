import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { NgiError } from '../../../src/core/errors.js';
import {
  DEFAULT_BUFFER_SIZE,
  MAX_BUFFER_SIZE,
  UwsgiPacketParser,
  encodeUwsgiPacket,
  parseUwsgiPacket,
  type UwsgiPacket,
} from '../../../src/protocol/uwsgi-packet.js';
import { captures, decodeCaptured } from '../../helpers/vectors.js';

/** Asserts that `fn` throws NGI_ERR_BAD_PACKET with a message matching `message`. */
function assertBadPacket(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof NgiError, `an NgiError, got ${String(error)}`);
    assert.equal(error.code, 'NGI_ERR_BAD_PACKET');
    assert.match(error.message, message);
    return true;
  });
}

/** Feeds `bytes` to a fresh streaming parser in pieces cut at `cuts`; collects the outcome. */
function parseInPieces(
  bytes: Buffer,
  cuts: number[],
  bufferSize = MAX_BUFFER_SIZE,
): { packet: UwsgiPacket; rest: Buffer } | undefined {
  const parser = new UwsgiPacketParser(bufferSize);
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let from = 0;
  let done: { packet: UwsgiPacket; rest: Buffer } | undefined;
  const rest: Buffer[] = [];
  for (const to of [...points, bytes.length]) {
    const piece = bytes.subarray(from, to);
    from = to;
    if (done !== undefined) rest.push(piece);
    else {
      done = parser.push(piece);
      if (done !== undefined) rest.push(done.rest);
    }
  }
  return done && { packet: done.packet, rest: Buffer.concat(rest) };
}

const GET = encodeUwsgiPacket([
  ['REQUEST_METHOD', 'GET'],
  ['PATH_INFO', '/'],
]);

describe('parseUwsgiPacket: every captured packet', () => {
  for (const { name, bin, json } of captures()) {
    it(`${name}: vars in wire order with duplicates, modifiers and size`, () => {
      const packet = parseUwsgiPacket(bin, MAX_BUFFER_SIZE);
      assert.equal(packet.modifier1, json.modifier1);
      assert.equal(packet.modifier2, json.modifier2);
      assert.equal(packet.size, 4 + json.datasize);
      assert.equal(bin.length - packet.size, json.body.length, 'what follows is the body');
      assert.deepEqual(
        packet.vars,
        json.vars.map(([k, v]) => [k, decodeCaptured(v)]),
      );
    });
  }

  it('re-encoding a decoded capture gives back its exact bytes', () => {
    for (const { name, bin } of captures()) {
      const packet = parseUwsgiPacket(bin, MAX_BUFFER_SIZE);
      const again = encodeUwsgiPacket(packet.vars, packet.modifier1, packet.modifier2);
      assert.ok(again.equals(bin.subarray(0, packet.size)), name);
    }
  });

  it('a raw UTF-8 header value decodes as UTF-8; bytes that are not UTF-8 as Latin-1', () => {
    const bytes = encodeUwsgiPacket([['HTTP_X', 'café ✓']]);
    assert.deepEqual(parseUwsgiPacket(bytes).vars, [['HTTP_X', 'café ✓']]);
    // 0xE9 alone is not UTF-8: one character per byte
    const latin = Buffer.from([0, 9, 0, 0, 1, 0, 0x58, 4, 0, 0x63, 0x61, 0x66, 0xe9]);
    assert.deepEqual(parseUwsgiPacket(latin).vars, [['X', 'caf\u00e9']]);
  });

  it('names that look alike to the cache of known names decode as sent, first time and after', () => {
    // Same length, same last, middle and fifth byte: the same slot in the cache of names.
    const vars: Array<[string, string]> = [
      ['HTTP_X_AB', 'one'],
      ['HTTP_X_CB', 'two'],
      ['HTTP_Y_AB', 'three'],
    ];
    for (let round = 0; round < 3; round++) {
      assert.deepEqual(parseUwsgiPacket(encodeUwsgiPacket(vars)).vars, vars);
      assert.deepEqual(
        parseUwsgiPacket(encodeUwsgiPacket([...vars].reverse())).vars,
        [...vars].reverse(),
      );
    }
  });

  it('an empty vars block is a packet with no vars', () => {
    assert.deepEqual(parseUwsgiPacket(Buffer.from([0, 0, 0, 0])), {
      modifier1: 0,
      modifier2: 0,
      vars: [],
      size: 4,
    });
  });
});

describe('parseUwsgiPacket: malformed packets are NGI_ERR_BAD_PACKET with a precise message', () => {
  it('a truncated header', () => {
    assertBadPacket(() => parseUwsgiPacket(GET.subarray(0, 3)), /truncated header: 3 of 4 bytes/);
  });

  it('a truncated vars block', () => {
    assertBadPacket(
      () => parseUwsgiPacket(GET.subarray(0, 10)),
      new RegExp(`truncated vars block: 6 of ${GET.length - 4} bytes`),
    );
  });

  it(`a vars block over the buffer size (default ${DEFAULT_BUFFER_SIZE})`, () => {
    const big = encodeUwsgiPacket([['HTTP_X_BIG', 'x'.repeat(5000)]]);
    assertBadPacket(
      () => parseUwsgiPacket(big),
      /5014 bytes is larger than the buffer size \(4096\)/,
    );
    assert.equal(parseUwsgiPacket(big, 8192).vars[0]![1].length, 5000);
  });

  it('modifier1 other than 0', () => {
    assertBadPacket(
      () => parseUwsgiPacket(encodeUwsgiPacket([['A', 'b']], 5)),
      /modifier1 5 is not supported/,
    );
  });

  it('a key length running past the block', () => {
    const broken = Buffer.from(GET);
    broken.writeUInt16LE(60000, 4);
    assertBadPacket(() => parseUwsgiPacket(broken), /key of 60000 bytes at offset 0 runs past/);
  });

  it('a value length running past the block', () => {
    const broken = Buffer.from(GET);
    broken.writeUInt16LE(999, 4 + 2 + 'REQUEST_METHOD'.length);
    assertBadPacket(() => parseUwsgiPacket(broken), /value of 999 bytes for "REQUEST_METHOD"/);
  });

  it('a lone byte where a key length should be', () => {
    const bytes = Buffer.from([0, 1, 0, 0, 7]);
    assertBadPacket(() => parseUwsgiPacket(bytes), /key length at offset 0 runs past/);
  });
});

describe('encodeUwsgiPacket', () => {
  it('writes the header nginx writes: modifier1, u16le size, modifier2', () => {
    const bytes = encodeUwsgiPacket([['A', 'bc']], 0, 7);
    assert.deepEqual([...bytes], [0, 7, 0, 7, 1, 0, 0x41, 2, 0, 0x62, 0x63]);
  });

  it('refuses vars that cannot fit a u16 length', () => {
    assert.throws(() => encodeUwsgiPacket([['A', 'x'.repeat(70000)]]), RangeError);
    assert.throws(
      () =>
        encodeUwsgiPacket([
          ['A', 'x'.repeat(40000)],
          ['B', 'y'.repeat(40000)],
        ]),
      RangeError,
    );
  });
});

describe('UwsgiPacketParser: packets in any split', () => {
  it('a packet a byte at a time: nothing until the last byte, then the packet', () => {
    const parser = new UwsgiPacketParser();
    for (let i = 0; i < GET.length - 1; i++) {
      assert.equal(parser.push(GET.subarray(i, i + 1)), undefined);
      assert.equal(parser.buffered, i + 1);
    }
    const done = parser.push(GET.subarray(GET.length - 1));
    assert.deepEqual(done?.packet, parseUwsgiPacket(GET));
    assert.equal(done?.rest.length, 0);
    assert.equal(parser.buffered, 0);
  });

  it('bytes after the packet come back as the start of the body', () => {
    const done = new UwsgiPacketParser().push(Buffer.concat([GET, Buffer.from('body')]));
    assert.equal(done?.rest.toString(), 'body');
  });

  it('an oversized packet is refused as soon as its header is in', () => {
    const parser = new UwsgiPacketParser(100);
    const big = encodeUwsgiPacket([['HTTP_X', 'x'.repeat(200)]]);
    parser.push(big.subarray(0, 2));
    assertBadPacket(() => parser.push(big.subarray(2, 4)), /larger than the buffer size \(100\)/);
  });

  it('every capture, a byte at a time, gives the one-shot result', () => {
    for (const { name, bin, json } of captures()) {
      const packetEnd = 4 + json.datasize;
      const parser = new UwsgiPacketParser(MAX_BUFFER_SIZE);
      let done: ReturnType<UwsgiPacketParser['push']>;
      for (let i = 0; i < packetEnd; i++) done = parser.push(bin.subarray(i, i + 1));
      assert.deepEqual(done!.packet, parseUwsgiPacket(bin, MAX_BUFFER_SIZE), name);
    }
  });
});

/** Keys as nginx sends them; values anything a string can hold (encoded as UTF-8). */
const varsArbitrary = fc.array(
  fc.tuple(
    fc.stringMatching(/^[A-Z_][A-Z0-9_.]{0,30}$/),
    fc.oneof(fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ maxLength: 200 })),
  ),
  { maxLength: 20 },
);

describe('properties (fast-check)', () => {
  it('decode(encode(vars)) gives back the vars, in order, duplicates kept', () => {
    fc.assert(
      fc.property(varsArbitrary, fc.integer({ min: 0, max: 255 }), (vars, modifier2) => {
        const bytes = encodeUwsgiPacket(vars, 0, modifier2);
        const packet = parseUwsgiPacket(bytes, MAX_BUFFER_SIZE);
        assert.deepEqual(packet.vars, vars);
        assert.equal(packet.modifier2, modifier2);
        assert.equal(packet.size, bytes.length);
      }),
      { numRuns: 300 },
    );
  });

  it('the streaming parser gives the same packet and body for any split', () => {
    fc.assert(
      fc.property(
        varsArbitrary,
        fc.uint8Array({ maxLength: 64 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (vars, body, cuts) => {
          const bytes = Buffer.concat([encodeUwsgiPacket(vars), body]);
          const done = parseInPieces(bytes, cuts);
          assert.ok(done !== undefined);
          assert.deepEqual(done.packet, parseUwsgiPacket(bytes, MAX_BUFFER_SIZE));
          assert.deepEqual([...done.rest], [...body]);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('arbitrary bytes: a packet, or NGI_ERR_BAD_PACKET, the same whole or split', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.integer({ min: 4, max: 64 }),
        (raw, cuts, bufferSize) => {
          const bytes = Buffer.from(raw);
          let whole: UwsgiPacket | NgiError;
          try {
            whole = parseUwsgiPacket(bytes, bufferSize);
          } catch (error) {
            assert.ok(error instanceof NgiError && error.code === 'NGI_ERR_BAD_PACKET');
            whole = error;
          }
          let split: UwsgiPacket | NgiError | undefined;
          try {
            split = parseInPieces(bytes, cuts, bufferSize)?.packet;
          } catch (error) {
            assert.ok(error instanceof NgiError && error.code === 'NGI_ERR_BAD_PACKET');
            split = error;
          }
          if (whole instanceof NgiError) {
            // A truncated packet is an error whole, and still "incomplete" when streamed.
            if (/truncated/.test(whole.message)) assert.equal(split, undefined);
            else assert.ok(split instanceof NgiError, 'the stream refuses it too');
          } else {
            assert.deepEqual(split, whole);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('mutated captures never throw anything but NGI_ERR_BAD_PACKET', () => {
    const packets = captures()
      .filter(({ bin }) => bin.length < 10_000)
      .map(({ bin, json }) => bin.subarray(0, 4 + json.datasize));
    fc.assert(
      fc.property(
        fc.constantFrom(...packets),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (packet, flips) => {
          const bytes = Buffer.from(packet);
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          try {
            parseUwsgiPacket(bytes, MAX_BUFFER_SIZE);
          } catch (error) {
            assert.ok(error instanceof NgiError && error.code === 'NGI_ERR_BAD_PACKET');
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
