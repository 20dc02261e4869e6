import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, readConfigFile, type ConfigKey } from '../../../src/cli/config-file.js';

const KEYS: ConfigKey[] = [
  { name: 'app', type: 'string' },
  { name: 'http', type: 'string', uwsgi: ['http-socket'] },
  { name: 'uwsgi', type: 'string', uwsgi: ['socket', 'uwsgi-socket'] },
  { name: 'workers', type: 'string', uwsgi: ['processes'] },
  { name: 'static-map', type: 'string', multiple: true },
  { name: 'reload', type: 'boolean' },
];

const dir = mkdtempSync(join(tmpdir(), 'ngi-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const values = (path: string) =>
  Object.fromEntries([...readConfigFile(path, KEYS).settings].map(([k, v]) => [k, v.value]));

describe('readConfigFile', () => {
  it('reads an existing uWSGI file: its names, repeated keys as a list, %d and $(VAR)', () => {
    process.env.NGI_TEST_PORT = '3031';
    const path = file(
      'uwsgi.ini',
      [
        '; a file a uWSGI user already has',
        '[uwsgi]',
        'master = true',
        'socket = 127.0.0.1:$(NGI_TEST_PORT)',
        'processes = 4',
        'static-map = /static=%dpublic',
        'static-map = /media=/srv/media',
        'vacuum = true',
      ].join('\n'),
    );
    const read = readConfigFile(path, KEYS);
    assert.deepEqual(Object.fromEntries([...read.settings].map(([k, v]) => [k, v.value])), {
      uwsgi: '127.0.0.1:3031',
      workers: '4',
      'static-map': [`/static=${dir}/public`, '/media=/srv/media'],
    });
    assert.equal(read.settings.get('workers')!.source, `${path} [uwsgi] processes`);
    assert.deepEqual(read.warnings, [
      `${path} [uwsgi] master: a uWSGI option ngi does not have; ignored`,
      `${path} [uwsgi] vacuum: a uWSGI option ngi does not have; ignored`,
    ]);
  });

  it('[ngi] wins over [uwsgi] in the same file', () => {
    const path = file('both.ini', '[uwsgi]\nprocesses = 4\nhttp = :8000\n[ngi]\nworkers = 2\n');
    assert.deepEqual(values(path), { workers: '2', http: ':8000' });
  });

  it('an unknown name in [ngi] is an error that suggests the near one', () => {
    const path = file('typo.ini', '[ngi]\nworkerz = 2\n');
    assert.throws(
      () => readConfigFile(path, KEYS),
      (error: Error) =>
        error instanceof ConfigError &&
        error.message === `${path} [ngi]: unknown setting "workerz" (did you mean "workers"?)`,
    );
  });

  it('an INI file with neither section says what it found', () => {
    const path = file('other.ini', '[server]\nport = 1\n');
    assert.throws(
      () => readConfigFile(path, KEYS),
      /has no \[ngi\] or \[uwsgi\] section \(found \[server\]\)/,
    );
  });

  it('a single-valued setting given twice is an error, not "last one wins"', () => {
    const path = file('twice.ini', '[ngi]\nhttp = :1\nhttp = :2\n');
    assert.throws(() => readConfigFile(path, KEYS), /\[ngi\] http is given more than once/);
  });

  it("reads JSON under the flags' names, numbers and lists included", () => {
    const path = file(
      'ngi.json',
      JSON.stringify({ app: 'app.js', workers: 3, 'static-map': ['/a=x'], reload: true }),
    );
    assert.deepEqual(values(path), {
      app: 'app.js',
      workers: '3',
      'static-map': ['/a=x'],
      reload: true,
    });
  });

  it('JSON: unknown names, wrong types and broken syntax are clear errors', () => {
    for (const [text, message] of [
      ['{"processes": 2}', /unknown setting "processes"/],
      ['{"workers": [1, 2]}', /workers takes one value, not a list/],
      ['{"reload": "maybe"}', /reload expects true or false/],
      ['{"http": null}', /http expects a string or a number, got null/],
      ['[1]', /must hold one JSON object/],
      ['{"http": ', /is not valid JSON/],
    ] as const) {
      assert.throws(() => readConfigFile(file('bad.json', text), KEYS), message, text);
    }
  });

  it('a missing file is named', () => {
    assert.throws(
      () => readConfigFile(join(dir, 'nope.ini'), KEYS),
      /cannot find the config file ".*nope\.ini"/,
    );
  });
});
