/*
 * `--config FILE`: settings from a JSON file or a uWSGI-style INI file, under the flags' own
 * names.
 *
 * Decisions, for people coming from uWSGI:
 * - An INI file is read from its `[uwsgi]` section and its `[ngi]` section, `[ngi]` winning:
 *   one file can serve both servers during a migration. uWSGI's own names for the same
 *   things are understood in `[uwsgi]` (`socket=` is the uwsgi listener, `processes=` the
 *   workers, `http-socket=` the HTTP listener); a uWSGI option ngi has no use for (`master`,
 *   `vacuum`, `module` …) is reported once and ignored, so an existing file works as it is.
 *   In `[ngi]` and in JSON, an unknown name is an error: a typo must not be silently lost.
 * - A repeated key is a list (uWSGI's `static-map=` lines), as is a JSON array.
 * - `%d` is the config file's folder (with its trailing `/`) and `$(NAME)` an environment
 *   variable, as in uWSGI; other relative paths are relative to the working directory, also
 *   as in uWSGI.
 */
import { closestName } from './closest-name.js';
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { decode } from 'ini';

/** What the reader needs to know about a setting. */
export interface ConfigKey {
  /** The flag's own name (`workers`), which a file may use everywhere. */
  name: string;
  type: 'string' | 'boolean';
  multiple?: boolean;
  /** uWSGI's names for the same setting, understood in an INI file's `[uwsgi]` section. */
  uwsgi?: readonly string[];
}

/** One setting as a file gave it: still text (numbers are checked with the flags' rules). */
export interface ConfigValue {
  value: string | string[] | boolean;
  /** Where it came from, for messages and `--print-config`: `ngi.ini [uwsgi] processes`. */
  source: string;
}

/** A config file read: settings by flag name, and the lines to warn about. */
export interface ConfigFile {
  settings: Map<string, ConfigValue>;
  warnings: string[];
}

/** A config file that cannot be used: printed as a usage error (exit code 2). */
export class ConfigError extends Error {}

/**
 * Reads `path` (`.json`, or INI for any other extension: `.ini`, `.cfg` …) into settings
 * named as the flags. `keys` are the settings a file may hold; `app` (the module to serve)
 * is one of them.
 *
 * @example
 * const { settings } = readConfigFile('ngi.ini', [{ name: 'workers', type: 'string', uwsgi: ['processes'] }]);
 * settings.get('workers'); // { value: '4', source: 'ngi.ini [uwsgi] processes' }
 */
export function readConfigFile(path: string, keys: readonly ConfigKey[]): ConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(
      code === 'ENOENT'
        ? `cannot find the config file ${JSON.stringify(path)}`
        : `cannot read the config file ${JSON.stringify(path)}: ${(error as Error).message}`,
    );
  }
  const byName = new Map(keys.map((key) => [key.name, key]));
  const out: ConfigFile = { settings: new Map(), warnings: [] };
  if (extname(path).toLowerCase() === '.json') {
    readJson(path, text, byName, out);
  } else {
    readIni(path, text, keys, byName, out);
  }
  return out;
}

function readJson(
  path: string,
  text: string,
  byName: Map<string, ConfigKey>,
  out: ConfigFile,
): void {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new ConfigError(`${path} must hold one JSON object of settings, e.g. {"http": ":8080"}`);
  }
  for (const [name, raw] of Object.entries(document)) {
    const key = byName.get(name);
    if (key === undefined) throw new ConfigError(unknownKey(path, name, byName));
    const source = `${path} ${name}`;
    out.settings.set(name, { value: jsonValue(key, raw, source), source });
  }
}

function jsonValue(key: ConfigKey, raw: unknown, source: string): ConfigValue['value'] {
  if (key.type === 'boolean') {
    if (typeof raw === 'boolean') return raw;
    throw new ConfigError(`${source} expects true or false, got ${JSON.stringify(raw)}`);
  }
  const scalar = (item: unknown): string => {
    if (typeof item === 'string') return item;
    if (typeof item === 'number' && Number.isFinite(item)) return String(item);
    throw new ConfigError(`${source} expects a string or a number, got ${JSON.stringify(item)}`);
  };
  if (Array.isArray(raw)) {
    if (!key.multiple) throw new ConfigError(`${source} takes one value, not a list`);
    return raw.map(scalar);
  }
  return key.multiple ? [scalar(raw)] : scalar(raw);
}

function readIni(
  path: string,
  text: string,
  keys: readonly ConfigKey[],
  byName: Map<string, ConfigKey>,
  out: ConfigFile,
): void {
  // Repeated keys become lists (uWSGI's repeated `static-map=` lines), not "last one wins".
  const sections = decode(text, { bracketedArray: false }) as Record<string, unknown>;
  const uwsgiNames = new Map<string, ConfigKey>();
  for (const key of keys) for (const alias of key.uwsgi ?? []) uwsgiNames.set(alias, key);
  const folder = dirname(resolve(path)) + '/';
  const expand = (value: string, source: string): string =>
    value.replace(/%d|%%|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match, env?: string) => {
      if (match === '%d') return folder;
      if (match === '%%') return '%';
      const found = process.env[env!];
      if (found === undefined) throw new ConfigError(`${source}: $(${env}) is not set`);
      return found;
    });
  let found = false;
  for (const [section, strict] of [
    ['uwsgi', false],
    ['ngi', true],
  ] as const) {
    const entries = sections[section];
    if (entries === undefined) continue;
    found = true;
    if (typeof entries !== 'object' || entries === null) continue;
    for (const [name, raw] of Object.entries(entries as Record<string, unknown>)) {
      const key = byName.get(name) ?? (strict ? undefined : uwsgiNames.get(name));
      const source = `${path} [${section}] ${name}`;
      if (key === undefined) {
        if (strict) throw new ConfigError(unknownKey(`${path} [ngi]`, name, byName));
        out.warnings.push(`${source}: a uWSGI option ngi does not have; ignored`);
        continue;
      }
      out.settings.set(key.name, { value: iniValue(key, raw, source, expand), source });
    }
  }
  if (!found) {
    const names = Object.keys(sections).filter((k) => typeof sections[k] === 'object');
    throw new ConfigError(
      `${path} has no [ngi] or [uwsgi] section${names.length > 0 ? ` (found [${names.join('], [')}])` : ''}`,
    );
  }
}

function iniValue(
  key: ConfigKey,
  raw: unknown,
  source: string,
  expand: (value: string, source: string) => string,
): ConfigValue['value'] {
  // `ini` turns a bare `true`/`false` into a boolean and keeps everything else as text.
  const list = Array.isArray(raw) ? raw : [raw];
  if (key.type === 'boolean') {
    if (list.length > 1) throw new ConfigError(`${source} is given more than once`);
    return parseBoolean(String(list[0]), source);
  }
  const texts = list.map((item) => expand(String(item), source));
  if (key.multiple) return texts;
  if (texts.length > 1) throw new ConfigError(`${source} is given more than once`);
  return texts[0]!;
}

/**
 * A boolean setting from text (a file, an environment variable): `true`/`1`/`yes`/`on`
 * or `false`/`0`/`no`/`off`.
 *
 * @example
 * parseBoolean('yes', 'NGI_RELOAD'); // true
 */
export function parseBoolean(text: string, source: string): boolean {
  const lower = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(lower)) return true;
  if (['false', '0', 'no', 'off', ''].includes(lower)) return false;
  throw new ConfigError(`${source} expects true or false, got ${JSON.stringify(text)}`);
}

function unknownKey(where: string, name: string, byName: Map<string, ConfigKey>): string {
  const near = closestName(name, [...byName.keys()]);
  return `${where}: unknown setting ${JSON.stringify(name)}${near ? ` (did you mean "${near}"?)` : ''}`;
}
