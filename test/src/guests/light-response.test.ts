// The light Response behaves as Node's own in everything an app can observe: each case is
// built both ways and compared member by member.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LightResponse, lightPartsOf } from '../../../src/guests/light-response.js';

const Light = LightResponse as unknown as typeof Response;
const Native = globalThis.Response;

/** Everything observable about a fresh Response, its body read as text. */
async function observe(response: Response) {
  const head = {
    status: response.status,
    statusText: response.statusText,
    ok: response.ok,
    type: response.type,
    url: response.url,
    redirected: response.redirected,
    bodyUsed: response.bodyUsed,
    headers: [...response.headers],
    cookies: response.headers.getSetCookie(),
    tag: Object.prototype.toString.call(response),
    isResponse: response instanceof Native,
  };
  const text = await response.text();
  return { ...head, text, usedAfter: response.bodyUsed };
}

const CASES: Array<[string, () => [ConstructorParameters<typeof Response>[0], ResponseInit?]]> = [
  ['no body', () => [undefined]],
  ['a string', () => ['hello']],
  ['an empty string', () => ['']],
  ['bytes', () => [new Uint8Array([104, 105])]],
  ['a Buffer', () => [Buffer.from('buffer')]],
  ['an ArrayBuffer', () => [new Uint8Array([1, 2, 3]).buffer]],
  ['a status and reason', () => ['made', { status: 201, statusText: 'Made It' }]],
  ['a record of headers', () => ['x', { headers: { 'X-One': ' 1 ', 'Content-Type': 'a/b' } }]],
  [
    'header pairs',
    () => [
      'x',
      {
        headers: [
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
        ],
      },
    ],
  ],
  [
    'a Headers',
    () => [
      'x',
      {
        headers: new Headers([
          ['set-cookie', 'a=1'],
          ['b', '2'],
        ]),
      },
    ],
  ],
  ['a null-body status', () => [null, { status: 204 }]],
  ['a stream', () => [new Blob(['streamed']).stream()]],
  ['a Blob', () => [new Blob(['blob'], { type: 'text/x-blob' })]],
  ['URLSearchParams', () => [new URLSearchParams('a=1&b=2')]],
  ['a value to trim and a control char', () => ['x', { headers: { a: '\tv\u0001w ' } }]],
];

describe('LightResponse', () => {
  for (const [what, make] of CASES) {
    it(`answers as a native Response for ${what}`, async () => {
      const [body, init] = make();
      const [body2, init2] = make();
      assert.deepEqual(
        await observe(new Light(body, init)),
        await observe(new Native(body2, init2)),
      );
    });
  }

  it('throws what the native constructor throws, of the same class', () => {
    const bad: Array<[ConstructorParameters<typeof Response>[0], ResponseInit?]> = [
      ['x', { status: 99 }],
      ['x', { status: 600 }],
      ['x', { status: 204 }],
      ['x', { statusText: 'bad\nreason' }],
      ['x', { headers: { 'bad name': 'v' } }],
      ['x', { headers: { a: 'line\nbreak' } }],
      ['x', { headers: [['only-name']] as unknown as [string, string][] }],
    ];
    for (const [body, init] of bad) {
      let expected: unknown;
      try {
        new Native(body, init);
      } catch (error) {
        expected = error;
      }
      assert.ok(expected instanceof Error, `native throws for ${JSON.stringify(init)}`);
      assert.throws(() => new Light(body, init), (expected as Error).constructor as never);
    }
  });

  it('is a Response to instanceof both ways, and a native one to instanceof it', () => {
    assert.ok(new Light('x') instanceof Native);
    assert.ok(new Native('x') instanceof Light);
    assert.ok(Native.error() instanceof Light);
    assert.equal(Light.name, 'Response');
    assert.equal(Light.length, Native.length);
  });

  it('gives a real ReadableStream body, read once like any body', async () => {
    const response = new Light('streamed');
    assert.ok(response.body instanceof ReadableStream);
    assert.equal(response.body, response.body);
    assert.equal(await new Native(response.body).text(), 'streamed');
    assert.equal(response.bodyUsed, true);
    await assert.rejects(response.text(), TypeError);
  });

  it('clones: both copies read the same body', async () => {
    const response = new Light('twice', { status: 202, headers: { a: 'b' } });
    const copy = response.clone();
    assert.equal(await copy.text(), 'twice');
    assert.equal(await response.text(), 'twice');
    assert.equal(copy.status, 202);
    assert.equal(copy.headers.get('a'), 'b');
  });

  it('reads as json, arrayBuffer, bytes and blob', async () => {
    assert.deepEqual(await new Light('{"a":1}').json(), { a: 1 });
    assert.deepEqual(new Uint8Array(await new Light('ab').arrayBuffer()), new Uint8Array([97, 98]));
    const blob = await new Light('ab', { headers: { 'content-type': 'x/y' } }).blob();
    assert.equal(blob.type, 'x/y');
    assert.equal(await blob.text(), 'ab');
  });

  it('copies the bytes it is given, as Fetch does', async () => {
    const bytes = new Uint8Array([97, 98]);
    const response = new Light(bytes);
    bytes[0] = 122;
    assert.equal(await response.text(), 'ab');
  });

  it('keeps its headers live until the body is built: a change shows in what is written', async () => {
    const response = new Light('x', { headers: { a: '1' } });
    response.headers.set('b', '2');
    assert.equal(response.headers, response.headers);
    const parts = lightPartsOf(response)!;
    assert.deepEqual(
      [...parts.headers!],
      [
        ['a', '1'],
        ['b', '2'],
        ['content-type', 'text/plain;charset=UTF-8'],
      ],
    );
    assert.equal(await response.text(), 'x');
    assert.equal(lightPartsOf(response), undefined, 'once built, the native one is read');
  });

  it('Response.json and Response.redirect answer as the native statics', async () => {
    assert.deepEqual(
      await observe(Light.json({ a: [1] }, { status: 201, headers: { x: 'y' } })),
      await observe(Native.json({ a: [1] }, { status: 201, headers: { x: 'y' } })),
    );
    assert.deepEqual(
      await observe(Light.json('s', { headers: { 'content-type': 'text/json' } })),
      await observe(Native.json('s', { headers: { 'content-type': 'text/json' } })),
    );
    assert.throws(() => Light.json(undefined), TypeError);
    assert.throws(() => Light.json(1n), TypeError);
    const redirect = Light.redirect('http://example.com/next', 307);
    assert.equal(redirect.status, 307);
    assert.equal(redirect.headers.get('location'), 'http://example.com/next');
    assert.throws(() => Light.redirect('http://example.com/', 200 as 301), RangeError);
  });

  it('can be subclassed, text and stream bodies alike', async () => {
    class Tagged extends Light {
      tag(): string {
        return `tagged ${this.status}`;
      }
    }
    const light = new Tagged('a', { status: 201 });
    assert.equal(light.tag(), 'tagged 201');
    assert.equal(await light.text(), 'a');
    const streamed = new Tagged(new Blob(['b']).stream());
    assert.ok(streamed instanceof Tagged && streamed instanceof Native);
    assert.equal(streamed.tag(), 'tagged 200');
    assert.equal(await streamed.text(), 'b');
  });
});
