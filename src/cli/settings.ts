/*
 * The effective settings of `ngi serve`: flags win over environment variables, which win over
 * the config file (as gunicorn's GUNICORN_CMD_ARGS over its config file: the environment is
 * what a deployment changes per host, the file what a repository ships). Each setting
 * remembers where it came from, so an error names the line to fix and `--print-config`
 * can say why a value is what it is.
 */
import { parseBoolean, readConfigFile, type ConfigKey, type ConfigValue } from './config-file.js';

/** A setting as the table describes it. */
export interface SettingKey extends ConfigKey {
  /** Only on the command line (`--help`, `--config` itself): no variable, no file key. */
  cliOnly?: boolean;
  /** Another name for the same setting (`processes` for `workers`). */
  aliasOf?: string;
}

/** The merged settings: by name, each with its source (`--http`, `NGI_HTTP`, `ngi.ini …`). */
export type Settings = Map<string, ConfigValue>;

/** `http` → `NGI_HTTP`, `static-map` → `NGI_STATIC_MAP`. */
export function envName(name: string): string {
  return `NGI_${name.toUpperCase().replaceAll('-', '_')}`;
}

/** What the sources gave, before merging. */
export interface SettingSources {
  /** Values from the command line, by flag name (what `parseArgs` returned). */
  flags: Record<string, string | string[] | boolean | undefined>;
  env: NodeJS.ProcessEnv;
  /** The keys every source may set (the flag table, plus `app`). */
  keys: readonly SettingKey[];
}

/** The merged settings and the warnings reading them produced (ignored uWSGI options). */
export interface MergedSettings {
  settings: Settings;
  warnings: string[];
  /** The config file read, if any. */
  configFile: string | undefined;
}

/**
 * Merges config file (`--config`, or `NGI_CONFIG`), environment and flags, in rising order
 * of precedence. A list setting (`static-map`) is replaced as a whole by a higher source,
 * never appended to: what the flags say is what runs.
 *
 * @example
 * const { settings } = mergeSettings({ flags: { http: ':8080' }, env: process.env, keys });
 * settings.get('http'); // { value: ':8080', source: '--http' }
 */
export function mergeSettings(sources: SettingSources): MergedSettings {
  const { flags, env, keys } = sources;
  const canonical = (name: string): string =>
    keys.find((key) => key.name === name)?.aliasOf ?? name;
  const settings: Settings = new Map();
  const put = (name: string, value: ConfigValue): void => {
    settings.set(canonical(name), value);
  };

  const configFile =
    (flags.config as string | undefined) ??
    (env[envName('config')] !== undefined && env[envName('config')] !== ''
      ? env[envName('config')]
      : undefined);
  let warnings: string[] = [];
  if (configFile !== undefined) {
    const fileKeys = keys.filter((key) => !key.cliOnly);
    const file = readConfigFile(configFile, fileKeys);
    warnings = file.warnings;
    for (const [name, value] of file.settings) put(name, value);
  }
  for (const key of keys) {
    if (key.cliOnly) continue;
    const variable = envName(key.name);
    const text = env[variable];
    if (text === undefined || text === '') continue;
    const value =
      key.type === 'boolean'
        ? parseBoolean(text, variable)
        : key.multiple
          ? text.split(',').map((item) => item.trim())
          : text;
    put(key.name, { value, source: variable });
  }
  for (const key of keys) {
    const value = flags[key.name];
    if (value !== undefined && !key.cliOnly) put(key.name, { value, source: `--${key.name}` });
  }
  return { settings, warnings, configFile };
}
