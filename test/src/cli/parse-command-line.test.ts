// The command line parsed in process: the same checks the CLI tests make through a process,
// for every rule that needs no running server.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCommandLine, UsageError, type Command } from '../../../src/cli/main.js';

const command = (...argv: string[]) => parseCommandLine(argv) as Command;
const mistake = (argv: string[], message: RegExp) =>
  assert.throws(
    () => parseCommandLine(argv),
    (error: unknown) => {
      assert.ok(error instanceof UsageError, String(error));
      assert.match(error.message, message);
      return true;
    },
  );

describe('parseCommandLine', () => {
  it('reads a listener and keeps the defaults', () => {
    const parsed = command('serve', 'app.js', '--http', ':8080');
    assert.equal(parsed.specifier, 'app.js');
    assert.deepEqual(parsed.http, { host: '127.0.0.1', port: 8080 });
    assert.equal(parsed.workers, 1);
    assert.equal(parsed.serve.bufferSize, 4096);
    assert.equal(parsed.serve.grace, 30);
  });

  it('answers help and version before anything else', () => {
    assert.equal(parseCommandLine(['serve', '--help']), 'help');
    assert.equal(parseCommandLine(['-v']), 'version');
  });

  it('names the flag a typo meant, and says nothing when none is close', () => {
    mistake(['serve', 'app.js', '--htp', '0'], /^unknown flag --htp \(did you mean --http\?\)$/);
    mistake(['serve', 'app.js', '--workrs', '2'], /did you mean --workers\?/);
    mistake(['serve', 'app.js', '--zzzzzz'], /^unknown flag --zzzzzz$/);
  });

  it('says a port is out of range', () => {
    mistake(
      ['serve', 'app.js', '--http', '127.0.0.1:99999'],
      /port 99999 is out of range \(0 to 65535\)/,
    );
  });

  it('refuses no listener, no module and a stray argument', () => {
    mistake(['serve', 'app.js'], /nothing to listen on/);
    mistake(['serve', '--http', '0'], /no app module given/);
    mistake(['serve', 'app.js', 'extra', '--http', '0'], /unexpected argument "extra"/);
  });

  it('stops with its parent when asked, or when npm started it', () => {
    const npm = process.env.npm_command;
    try {
      delete process.env.npm_command;
      assert.equal(command('serve', 'app.js', '--http', '0').dieWithParent, false);
      assert.equal(
        command('serve', 'app.js', '--http', '0', '--die-with-parent').dieWithParent,
        true,
      );
      process.env.npm_command = 'exec';
      assert.equal(command('serve', 'app.js', '--http', '0').dieWithParent, true);
    } finally {
      if (npm === undefined) delete process.env.npm_command;
      else process.env.npm_command = npm;
    }
  });
});
