/**
 * User settings (`vqlsp.*`) -> what the server receives.
 *
 * The server reads camelCase options, all optional, from initializationOptions
 * and from `workspace/didChangeConfiguration` `{settings: {vqlsp: ...}}` (and
 * may pull section "vqlsp" with `workspace/configuration`). All three carry the
 * same object, built here, so the server never sees client-only keys such as
 * `serverCommand` or `trace`.
 */

/** The part of `vscode.WorkspaceConfiguration` we use: dotted keys under `vqlsp`. */
export interface SettingsReader {
  get<T>(key: string): T | undefined;
}

export type Severity = 'information' | 'hint' | 'warning' | 'error' | 'off';

/** One label's diagnostics; a field left out takes the general `diagnostics` value. */
export interface LabelRule {
  threshold?: number | null;
  severity?: Severity | null;
}

export interface ServerOptions {
  model?: string | null;
  heads?: string[];
  device?: 'auto' | 'cpu' | 'cuda';
  debounceMs?: number;
  positionPolicy?: 'stable' | 'exact';
  settleMs?: number;
  memoryBudgetMb?: number;
  sectionTokens?: number;
  languages?: string[];
  excludePatterns?: string[];
  maxFileLength?: number;
  diagnostics?: {
    threshold?: number;
    severity?: Severity;
    unit?: 'sentence' | 'paragraph';
    /** Keyed by label (`negative`) or head and label (`sentiment/negative`). */
    labels?: Record<string, LabelRule>;
  };
}

export const SETTINGS_SECTION = 'vqlsp';

export const DEFAULT_LANGUAGES = ['plaintext', 'markdown', 'restructuredtext', 'latex', 'git-commit'];

/**
 * Settings a running client cannot take in: how the process starts, and the
 * document selector (which languages' documents are sent). A change restarts.
 */
export const RESTART_SETTINGS = ['serverCommand', 'pythonPath', 'languages'];

/**
 * The options object for the server. Keys the user left unset are omitted, so
 * the server's own defaults apply; an explicit `null` model means the default model.
 */
export function serverOptions(settings: SettingsReader): ServerOptions {
  const options: ServerOptions = {};
  const model = settings.get<string | null>('model');
  if (model !== undefined) {
    options.model = model === '' ? null : model;
  }
  copy(settings, 'heads', options);
  copy(settings, 'device', options);
  copy(settings, 'debounceMs', options);
  copy(settings, 'positionPolicy', options);
  copy(settings, 'settleMs', options);
  copy(settings, 'memoryBudgetMb', options);
  copy(settings, 'sectionTokens', options);
  copy(settings, 'languages', options);
  copy(settings, 'excludePatterns', options);
  copy(settings, 'maxFileLength', options);
  const diagnostics: NonNullable<ServerOptions['diagnostics']> = {};
  copy(settings, 'diagnostics.threshold', diagnostics, 'threshold');
  copy(settings, 'diagnostics.severity', diagnostics, 'severity');
  copy(settings, 'diagnostics.unit', diagnostics, 'unit');
  copy(settings, 'diagnostics.labels', diagnostics, 'labels');
  if (Object.keys(diagnostics).length > 0) {
    options.diagnostics = diagnostics;
  }
  return options;
}

function copy<T extends object>(settings: SettingsReader, key: string, into: T, as?: keyof T): void {
  const value = settings.get<unknown>(key);
  if (value !== undefined) {
    (into as Record<string, unknown>)[(as as string | undefined) ?? key] = value;
  }
}

/** Language ids the client sends documents for (the server's list, or the default one). */
export function documentLanguages(settings: SettingsReader): string[] {
  const languages = settings.get<string[]>('languages');
  return Array.isArray(languages) && languages.length > 0 ? languages : DEFAULT_LANGUAGES;
}

/** The body of `workspace/didChangeConfiguration`. */
export function didChangeConfigurationParams(settings: SettingsReader): { settings: { vqlsp: ServerOptions } } {
  return { settings: { vqlsp: serverOptions(settings) } };
}

/**
 * Answer to one item of a `workspace/configuration` pull: our options for
 * section "vqlsp" (or a key under it, e.g. "vqlsp.diagnostics"); `undefined`
 * for sections we do not own, which are left to the editor's default answer.
 */
export function configurationSection(section: string | undefined, settings: SettingsReader): unknown {
  if (section === SETTINGS_SECTION) {
    return serverOptions(settings);
  }
  if (section?.startsWith(`${SETTINGS_SECTION}.`)) {
    const key = section.slice(SETTINGS_SECTION.length + 1) as keyof ServerOptions;
    return serverOptions(settings)[key] ?? null;
  }
  return undefined;
}
