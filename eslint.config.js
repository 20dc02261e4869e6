import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * The layers of src/, and what each may import. Imports point one way:
 *   core ← protocol, hosts, guests ← middleware ← server ← cli, testing
 * Hosts (an NGI app served by a Node response, a Fetch runtime, a uwsgi connection) and
 * guests (a Node or Fetch app run on an environ) never import each other. Nothing in src/
 * imports adapters/ or a framework; adapters/ use core, hosts, guests and middleware; the bin
 * wires the adapters into the CLI.
 */
const FRAMEWORKS = ['express', 'fastify', 'koa', 'koa-mount', 'hono', 'hono/*', '@hono/*'];
const layer = (name) => ({ regex: `(^|/)${name}/`, message: `this layer may not import ${name}/` });
const rules = (forbidden, extra = []) => ({
  'no-restricted-imports': [
    'error',
    {
      paths: FRAMEWORKS.filter((f) => !f.includes('*')).map((name) => ({
        name,
        message: 'src/ never imports a framework: that is what adapters/ are for',
      })),
      patterns: [
        ...forbidden.map(layer),
        ...extra,
        {
          group: FRAMEWORKS.filter((f) => f.includes('*')),
          message: 'src/ never imports a framework',
        },
      ],
    },
  ],
});
const ADAPTERS = { regex: '(^|/)adapters/', message: 'src/ never imports adapters/' };
const BIN = { regex: '(^|/)bin/', message: 'only the bin imports the bin' };

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      'test/fixtures/uwsgi-vectors/',
      'test/fixtures/modules/broken/',
      '.cache/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        queueMicrotask: 'readonly',
        URL: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        Request: 'readonly',
        Response: 'readonly',
        Headers: 'readonly',
        ReadableStream: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['src/core/**'],
    rules: rules(
      ['protocol', 'hosts', 'guests', 'middleware', 'server', 'cli', 'testing'],
      [ADAPTERS, BIN],
    ),
  },
  {
    files: ['src/protocol/**'],
    rules: rules(['hosts', 'guests', 'middleware', 'server', 'cli', 'testing'], [ADAPTERS, BIN]),
  },
  {
    files: ['src/hosts/**'],
    rules: rules(['guests', 'middleware', 'server', 'cli', 'testing'], [ADAPTERS, BIN]),
  },
  {
    files: ['src/guests/**'],
    rules: rules(['hosts', 'middleware', 'server', 'cli', 'testing'], [ADAPTERS, BIN]),
  },
  { files: ['src/middleware/**'], rules: rules(['server', 'cli', 'testing'], [ADAPTERS, BIN]) },
  { files: ['src/server/**'], rules: rules(['cli', 'testing'], [ADAPTERS, BIN]) },
  // The conformance kit sits beside the CLI: it hosts apps with the server's listener.
  { files: ['src/testing/**'], rules: rules(['cli'], [ADAPTERS, BIN]) },
  { files: ['src/cli/**', 'src/index.ts'], rules: rules(['testing'], [ADAPTERS, BIN]) },
  {
    // The master only forks and supervises (its RSS is the gateway's alone): the serving code,
    // TLS and undici's fetch are for the processes that serve (a worker, --workers 0), which
    // load them with import(). Types are free.
    files: ['src/cli/main.ts', 'src/server/master.ts', 'src/server/load-app.ts', 'bin/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'node:tls', allowTypeImports: true, message: 'import() it where TLS is used' },
          ],
          patterns: [
            {
              regex: '/(serve|worker|stats-server|[a-z]*-listener|light-response)\\.js$',
              allowTypeImports: true,
              message: 'the master does not load the serving code: import() it where it serves',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['adapters/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '(^|/)src/(server|cli|testing)/',
              message: 'adapters use core, hosts, guests, middleware',
            },
            BIN,
          ],
        },
      ],
    },
  },
  {
    // CommonJS app modules, as users write them (the loader's tests require them).
    files: ['test/fixtures/modules/cjs/**/*.js'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', exports: 'writable' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Type-aware rules for the library: an unawaited promise (`exchange.run()`, a write) must be
    // awaited, returned or marked `void` on purpose.
    files: ['src/**/*.ts', 'adapters/**/*.ts', 'bin/**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
    },
  },
);
