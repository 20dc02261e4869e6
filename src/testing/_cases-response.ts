import { TEXT, differs, first, type KitCase } from './_case.js';
import { headerValues, type WireResponse } from './_wire.js';

/* Status, headers, lazy headers and excInfo, errors (docs/spec.md §2, §4, §5, §9). */

/** A client can tell this response from a complete one: cut short, or an error status. */
function broken(response: WireResponse): boolean {
  return !response.complete || response.error !== undefined || response.status >= 500;
}

function describe(response: WireResponse): string {
  const body = response.body.toString('utf8');
  return `status ${response.status}, ${response.complete ? 'complete' : 'incomplete'}, body ${JSON.stringify(body.length > 60 ? body.slice(0, 60) + '…' : body)}${response.error ? `, ${response.error}` : ''}`;
}

/** The app's own mistake must end as an error status, with none of its bytes on the wire. */
function refused(response: WireResponse, mustNotShow: RegExp): string | undefined {
  const wire = response.rawHeaders.map(([name, value]) => `${name}: ${value}`).join('\n');
  if (mustNotShow.test(wire) || mustNotShow.test(response.body.toString('latin1'))) {
    return `what the app must not send reached the wire (${describe(response)})`;
  }
  if (response.status !== 0 && response.status < 500) {
    return `expected a 5xx (or a cut connection), got ${describe(response)}`;
  }
  return undefined;
}

export const responseCases: KitCase[] = [
  {
    rule: 'R2.2',
    name: 'a string returned as the body is an error, not sent per character',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('200 OK', TEXT);
        return 'kit-string-body' as never;
      },
      async check({ send }) {
        return refused(await send({ path: '/string-body' }), /kit-string-body/);
      },
    }),
  },
  {
    rule: 'R4.1',
    name: 'the status code the app chose reaches the client (299, 418, 599)',
    make: () => ({
      app: (environ, startResponse) => {
        const code = environ.PATH_INFO.slice(-3);
        startResponse(`${code} Kit Status`, TEXT);
        return [code];
      },
      async check({ send }) {
        for (const code of [299, 418, 599]) {
          const response = await send({ path: `/status/${code}` });
          const failure = first(
            differs(`status for ${code}`, code, response.status),
            differs(`body for ${code}`, String(code), response.body.toString()),
          );
          if (failure !== undefined) return failure;
        }
        return undefined;
      },
    }),
  },
  {
    rule: 'R4.1',
    name: 'a status that is not "<code> <reason>" is a 500',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('2000 Kit Not A Status', TEXT);
        return ['kit-must-not-be-sent'];
      },
      async check({ send }) {
        return refused(await send({ path: '/bad-status' }), /kit-must-not-be-sent|2000/);
      },
    }),
  },
  {
    rule: 'R4.2',
    name: 'a 1xx final status is a 500, never sent as the response',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('103 Early Hints', TEXT);
        return ['kit-must-not-be-sent'];
      },
      async check({ send }) {
        const response = await send({ path: '/informational' });
        if (response.status === 0) return `no final response (${response.error})`;
        return refused(response, /kit-must-not-be-sent/);
      },
    }),
  },
  {
    rule: 'R4.3',
    name: 'repeated response headers reach the client, in order (three Set-Cookie)',
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('200 OK', [
          ['Content-Type', 'text/plain'],
          ['Set-Cookie', 'a=1; Path=/'],
          ['X-Kit-Repeat', 'one'],
          ['Set-Cookie', 'b=2; Path=/'],
          ['X-Kit-Repeat', 'two'],
          ['Set-Cookie', 'c=3; Path=/'],
        ]);
        return ['cookies'];
      },
      async check({ send }) {
        const response = await send({ path: '/cookies' });
        return first(
          differs('status', 200, response.status),
          differs(
            'Set-Cookie headers',
            ['a=1; Path=/', 'b=2; Path=/', 'c=3; Path=/'],
            headerValues(response, 'set-cookie'),
          ),
          // Other names may be joined into one line: it means the same (RFC 9110 §5.3).
          differs('X-Kit-Repeat', 'one, two', headerValues(response, 'x-kit-repeat').join(', ')),
        );
      },
    }),
  },
  {
    rule: 'R4.4',
    name: 'CR or LF in a header value is a 500, and the header never reaches the wire',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['X-Kit', 'a\r\nX-Kit-Injected: 1']]);
        return ['kit-must-not-be-sent'];
      },
      async check({ send }) {
        return refused(await send({ path: '/injection' }), /X-Kit-Injected|kit-must-not-be-sent/i);
      },
    }),
  },
  {
    rule: 'R4.5',
    name: 'hop-by-hop headers from the app never reach the wire or change the framing',
    validate: false,
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('200 OK', [
          ['Content-Type', 'text/plain'],
          ['Transfer-Encoding', 'kit-gzip'],
          ['Upgrade', 'kit-protocol'],
          ['Keep-Alive', 'timeout=999'],
          ['Trailer', 'X-Kit-Trailer'],
          ['TE', 'kit-trailers'],
          ['X-Kit', 'kept'],
        ]);
        return ['kept'];
      },
      async check({ send }) {
        const response = await send({ path: '/hop-by-hop' });
        // Failing the response clearly is allowed too.
        if (response.status >= 500) return undefined;
        const wire = response.rawHeaders.map(([n, v]) => `${n}: ${v}`).join('\n');
        return first(
          differs('status', 200, response.status),
          differs('body', 'kept', response.body.toString()),
          differs('X-Kit', ['kept'], headerValues(response, 'x-kit')),
          /kit-gzip|kit-protocol|timeout=999|X-Kit-Trailer|kit-trailers/i.test(wire)
            ? `a hop-by-hop header the app set reached the wire:\n${wire}`
            : undefined,
        );
      },
    }),
  },
  {
    rule: 'R5.1',
    name: 'empty chunks do not send the head: an error page can still replace it',
    make: () => ({
      app: (_environ, startResponse) =>
        (async function* () {
          startResponse('200 OK', [['X-Kit', 'first']]);
          yield '';
          yield new Uint8Array(0);
          // The host pulled again: it took both empty chunks, and must not have sent the head.
          startResponse('503 Kit Replaced', [['X-Kit', 'replaced'], ...TEXT], new Error('kit'));
          yield 'replaced';
        })(),
      async check({ send }) {
        const response = await send({ path: '/empty-chunks' });
        return first(
          differs('status', 503, response.status),
          differs('X-Kit', ['replaced'], headerValues(response, 'x-kit')),
          differs('body', 'replaced', response.body.toString()),
        );
      },
    }),
  },
  {
    rule: 'R5.2',
    name: 'startResponse with excInfo before the head replaces status and headers',
    make: () => ({
      app: (_environ, startResponse) => {
        startResponse('200 OK', [['X-Kit', 'first'], ...TEXT]);
        startResponse('500 Kit Error Page', [['X-Kit', 'error page'], ...TEXT], new Error('kit'));
        return ['error page'];
      },
      async check({ send }) {
        const response = await send({ path: '/error-page' });
        return first(
          differs('status', 500, response.status),
          differs('X-Kit', ['error page'], headerValues(response, 'x-kit')),
          differs('body', 'error page', response.body.toString()),
        );
      },
    }),
  },
  {
    rule: 'R5.3',
    name: 'startResponse with excInfo after the head aborts the response, even if the app goes on',
    make: () => ({
      app: (_environ, startResponse) =>
        (async function* () {
          startResponse('200 OK', TEXT);
          yield 'partial ';
          try {
            startResponse('500 Kit Too Late', TEXT, new Error('kit: too late'));
          } catch {
            // The app swallows the rethrown error and carries on: the host must not.
          }
          yield 'and the rest';
        })(),
      async check({ send }) {
        const response = await send({ path: '/late-error' });
        return broken(response)
          ? undefined
          : `the client took a broken response for a complete one (${describe(response)})`;
      },
    }),
  },
  {
    rule: 'R9.1',
    name: 'an app that throws before responding gets a plain 500, without its message',
    make: () => ({
      app: () => {
        throw new Error('kit secret detail');
      },
      async check({ send }) {
        const response = await send({ path: '/throw' });
        return first(
          differs('status', 500, response.status),
          /kit secret detail/.test(response.body.toString())
            ? 'the error message reached the client'
            : undefined,
        );
      },
    }),
  },
  {
    rule: 'R9.2',
    name: 'a body that fails after the head: the client sees an incomplete response',
    make: () => ({
      app: (_environ, startResponse) =>
        (async function* () {
          startResponse('200 OK', TEXT);
          yield 'partial';
          throw new Error('kit: the body failed');
        })(),
      async check({ send }) {
        const response = await send({ path: '/fail-after-head' });
        return broken(response)
          ? undefined
          : `the client took a broken response for a complete one (${describe(response)})`;
      },
    }),
  },
];
